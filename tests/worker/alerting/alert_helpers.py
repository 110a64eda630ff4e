"""Helpers for the alerting tests: links driven to failure through the real service code."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from models.db import transaction
from models.links import apply_observation, request_link_of, request_unlink_of
from models.statemachine import Direction, Observation, Signal, Source
from models.tables import utcnow

REASON = "Phone number is not associated with a messaging profile"


def number(i: int) -> str:
    return f"+1202555{i:04d}"


def observe(
    session: Session,
    provider: str,
    num: str,
    signal: Signal,
    status: str,
    *,
    now: datetime,
    direction: Direction | None = None,
    reason: str | None = None,
    source: Source = Source.POLL,
) -> None:
    obs = Observation(
        source=source,
        provider_status=status,
        observed_at=now,
        signal=signal,
        direction=direction,
        reason=reason,
    )
    apply_observation(session, provider, num, obs, now=now)


def fail_links(
    engine: sa.Engine,
    numbers: list[str],
    *,
    campaign: str = "CAMP1",
    provider: str = "plivo",
    now: datetime | None = None,
) -> None:
    """Request links and have the provider fail them: one link_failed alert each."""
    now = now or utcnow()
    # Observations at or before a request's instant belong to an older generation.
    requested = now - timedelta(seconds=1)
    with transaction(engine) as s:
        for n in numbers:
            request_link_of(s, provider, n, campaign, source=Source.API, now=requested)
            observe(s, provider, n, Signal.FAILED, "FAILED", now=now, reason=REASON)


def fail_unlink(engine: sa.Engine, num: str, *, campaign: str = "CAMP1", now: datetime) -> None:
    def ago(seconds: int) -> datetime:
        return now - timedelta(seconds=seconds)

    with transaction(engine) as s:
        request_link_of(s, "telnyx", num, campaign, source=Source.API, now=ago(3))
        observe(s, "telnyx", num, Signal.LINKED, "ASSIGNED", now=ago(2))
        request_unlink_of(s, "telnyx", num, source=Source.API, now=ago(1))
        observe(
            s,
            "telnyx",
            num,
            Signal.FAILED,
            "FAILED_UNASSIGNMENT",
            now=now,
            direction=Direction.UNLINK,
            reason="Number removal was rejected by the carrier",
        )
