"""What a provider error means for a claimed link, and when to try again.

Temporary errors (timeouts, 5xx, 429) are retried with capped, jittered backoff, never
sooner than the provider's Retry-After. Rejected credentials also raise an alert (once an
hour per provider) and are retried: the link keeps its request until someone fixes them. A
refused *request* is not decided here: it may only mean our earlier request arrived
(``worker.requests`` checks before failing the link).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
import structlog

from models.alerts.outbox import raise_alert
from models.db import transaction
from models.polling import Cadence, Claim, reschedule
from models.statemachine import AlertKind
from providers.base import (
    CredentialsRejected,
    PermanentProviderError,
    ProviderError,
    TemporaryProviderError,
)
from worker.results import Stats

log = structlog.get_logger(__name__)


def is_refusal(exc: ProviderError) -> bool:
    """The provider refused a request for good (not our credentials)."""
    return isinstance(exc, PermanentProviderError) and not isinstance(exc, CredentialsRejected)


def retry_after(exc: ProviderError) -> float | None:
    """The provider's own delay (Retry-After), if it gave one."""
    return exc.retry_after if isinstance(exc, TemporaryProviderError) else None


@dataclass
class Retries:
    engine: sa.Engine
    cadence: Cadence
    rng: random.Random
    clock: Callable[[], datetime]

    def on_error(self, claim: Claim, exc: ProviderError, stats: Stats, *, request: bool) -> None:
        """Count the error, alert rejected credentials, and schedule the next attempt."""
        stats.errors += 1
        if isinstance(exc, CredentialsRejected):
            with transaction(self.engine) as session:
                raise_alert(
                    session,
                    AlertKind.CREDENTIALS,
                    key_extra=f"{claim.provider}:{self.clock():%Y-%m-%dT%H}",
                    reason=f"{claim.provider} rejected our credentials: {exc}",
                    payload={"provider": claim.provider},
                )
        timed_out = isinstance(exc, TemporaryProviderError) and exc.timed_out
        self.retry_later(claim, str(exc), retry_after(exc), request, timed_out=timed_out)

    def retry_later(
        self,
        claim: Claim,
        error: str,
        retry_after: float | None,
        request: bool | None = None,
        *,
        timed_out: bool = False,
    ) -> None:
        """Try the claim again after a backoff (a request, or a poll when ``request`` is
        False); ``timed_out``: the request may have arrived, so check before resending."""
        request = claim.requested if request is None else request
        attempts = claim.attempts + 1
        delay = max(retry_after or 0.0, self.cadence.backoff(attempts, self.rng))
        log.info(
            "will retry", provider=claim.provider, number=claim.number, error=error, delay=delay
        )
        with transaction(self.engine) as session:
            reschedule(
                session,
                claim,
                delay=delay,
                now=self.clock(),
                error=error,
                poll_attempts=None if request else attempts,
                request_attempts=attempts if request else None,
                needs_check=(timed_out or claim.needs_check) if request else None,
            )
