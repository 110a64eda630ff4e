"""Recording what a provider said about claimed links, and when to look at them next.

Answers are recorded a batch at a time through the set-based apply path shared with the inbox
(``models.apply``): one transaction and a constant number of statements per batch, however
many links a campaign listing or a batch link answered for.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
import structlog

from common import crashpoints
from models.apply import Item, apply_batch
from models.db import transaction
from models.polling import Cadence, Claim, Schedule, reschedule_many
from models.statemachine import Decision, Direction, Observation, Signal, Source, State, Verdict
from providers.base import NumberStatus

log = structlog.get_logger(__name__)


@dataclass
class Stats:
    claimed: int = 0
    requests_sent: int = 0
    polled: int = 0
    applied: int = 0
    errors: int = 0
    verdicts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, other: Stats) -> None:
        self.claimed += other.claimed
        self.requests_sent += other.requests_sent
        self.polled += other.polled
        self.applied += other.applied
        self.errors += other.errors
        for k, v in other.verdicts.items():
            self.verdicts[k] += v

    def count(self, decision: Decision, source: Source) -> None:
        self.polled += source is Source.POLL
        self.verdicts[decision.verdict.value] += 1
        self.applied += decision.verdict is Verdict.APPLIED


@dataclass
class Recorder:
    engine: sa.Engine
    cadence: Cadence
    rng: random.Random
    clock: Callable[[], datetime]

    def record(self, claim: Claim, status: NumberStatus, stats: Stats, source: Source) -> bool:
        """Record one answer; True if it changed the link."""
        return self.record_many([(claim, status)], stats, source)[0]

    def record_many(
        self, pairs: Sequence[tuple[Claim, NumberStatus]], stats: Stats, source: Source
    ) -> list[bool]:
        """Record answers for many claims in one transaction; which of them changed a link.

        Should the batch's transaction fail, each answer is recorded alone; one that fails
        alone raises (its claim's lease brings the link back).
        """
        if len(pairs) > 1:
            try:
                return self._save(pairs, stats, source)
            except Exception as exc:
                log.warning("batched apply failed; one at a time", rows=len(pairs), error=str(exc))
        return [changed for pair in pairs for changed in self._save([pair], stats, source)]

    def fail(self, claim: Claim, reason: str, stats: Stats) -> None:
        """The provider refused our request for good: record the failure with its reason."""
        self.record(claim, failure(claim, reason), stats, source=Source.SYSTEM)

    def _save(
        self, pairs: Sequence[tuple[Claim, NumberStatus]], stats: Stats, source: Source
    ) -> list[bool]:
        for _ in pairs:
            crashpoints.reach("provider.after_call")
        now = self.clock()
        items = [Item(c.provider, c.number, observation(c, s, source, now)) for c, s in pairs]
        with transaction(self.engine) as session:
            decisions = apply_batch(session, items, now=now)
            schedules = [
                self._schedule_after(claim, decision)
                for (claim, _), decision in zip(pairs, decisions, strict=True)
            ]
            reschedule_many(session, schedules, now=now)
        for decision in decisions:
            stats.count(decision, source)
        return [d.verdict is Verdict.APPLIED for d in decisions]

    def _schedule_after(self, claim: Claim, decision: Decision) -> Schedule:
        changed = decision.verdict is Verdict.APPLIED
        state = decision.to_state if changed and decision.to_state else claim.state
        if state in (State.LINK_REQUESTED, State.UNLINK_REQUESTED):
            # Still not accepted (a GET after a timeout found nothing): send again soon.
            return Schedule(claim, delay=self.cadence.backoff(0), needs_check=False)
        attempts = 0 if changed or claim.requested else claim.attempts + 1
        return Schedule(
            claim,
            delay=self.cadence.after_poll(state, attempts, self.rng),
            poll_attempts=attempts,
            # The provider accepted the request: its retry state and any move are done.
            request_attempts=0 if claim.requested else None,
            needs_check=False if claim.requested else None,
            clear_prior_campaign=claim.requested,
        )


def observation(claim: Claim, status: NumberStatus, source: Source, now: datetime) -> Observation:
    return Observation(
        source=source,
        provider_status=status.provider_status,
        observed_at=now,
        signal=status.signal,
        direction=status.direction,
        campaign_id=status.campaign_id,
        generation=claim.generation,
        reason=status.reason,
        provider_time=status.provider_time,
        retry_once=status.retry_once,
        carrier_mapping=status.carrier_mapping,
    )


def failure(claim: Claim, reason: str, provider_status: str = "REJECTED") -> NumberStatus:
    """A failure of ``claim``'s request, as an answer about it."""
    direction = Direction.UNLINK if claim.state is State.UNLINK_REQUESTED else Direction.LINK
    return NumberStatus(
        number=claim.number,
        campaign_id=claim.campaign_id,
        provider_status=provider_status,
        signal=Signal.FAILED,
        direction=direction,
        reason=reason,
    )


def not_linked(claim: Claim, direction: Direction | None) -> NumberStatus:
    """What "the provider does not have this number" says, as an answer about ``claim``."""
    return NumberStatus(
        number=claim.number,
        campaign_id=claim.campaign_id,
        provider_status="NOT_LINKED",
        signal=Signal.NOT_LINKED,
        direction=direction,
    )
