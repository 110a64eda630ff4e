"""Delivering alert rows: claim, then mark delivered, failed (retry later or give up) or
released; the moves of :mod:`.states`. Each function runs inside the caller's transaction.

A claim sets ``sending`` and a lease (``next_attempt_at = now + SEND_LEASE``) in its own
committed transaction *before* anything is sent, so two workers never send the same row;
a worker killed mid-send leaves a ``sending`` row whose lease runs out and is claimed again
(at least once: a crash between the send and the commit that records it sends it twice).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from models.alerts.grouping import GroupKey, group_key, is_hot
from models.alerts.states import DeliveryState
from models.db import is_postgres
from models.tables import Alert, utcnow

MAX_ATTEMPTS = 12
BACKOFF_BASE = timedelta(seconds=10)
BACKOFF_CAP = timedelta(minutes=15)
#: How long a claimed row belongs to the worker that claimed it: above a run's time budget
#: (worker.alerting.RUN_BUDGET), short enough that a killed worker's claims come back soon.
SEND_LEASE = timedelta(seconds=30)


@dataclass(frozen=True)
class Claimed:
    """A claimed alert, detached from any session."""

    id: int
    attempts: int
    kind: str
    provider: str | None
    number: str | None
    campaign_id: str | None
    payload: dict[str, Any]
    is_digest: bool
    created_at: datetime
    delivered_to: tuple[str, ...]


def claim_due(session: Session, *, now: datetime | None = None, limit: int = 50) -> list[Claimed]:
    """Claim due alerts (pending, or sending with an expired lease) for this worker.

    Alerts of a hot group are left for the next digest instead of being sent one by one.
    PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so concurrent workers claim disjoint rows.
    """
    now = now or utcnow()
    stmt = (
        select(Alert)
        .where(
            col(Alert.state).in_([DeliveryState.PENDING, DeliveryState.SENDING]),
            col(Alert.next_attempt_at) <= now,
        )
        .order_by(col(Alert.next_attempt_at), col(Alert.id))
        .limit(limit)
    )
    if is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True)
    rows = session.exec(stmt).all()
    hot: dict[GroupKey, bool] = {}
    claimed: list[Claimed] = []
    for alert in rows:
        key = group_key(alert)
        if alert.state == DeliveryState.PENDING and not alert.is_digest:
            if key not in hot:
                hot[key] = is_hot(session, key, now)
            if hot[key]:
                continue
        assert alert.id is not None
        alert.state = DeliveryState.SENDING
        alert.attempts += 1
        alert.next_attempt_at = now + SEND_LEASE
        session.add(alert)
        claimed.append(
            Claimed(
                id=alert.id,
                attempts=alert.attempts,
                kind=alert.kind,
                provider=alert.provider,
                number=alert.number,
                campaign_id=alert.campaign_id,
                payload=dict(alert.payload),
                is_digest=alert.is_digest,
                created_at=alert.created_at,
                delivered_to=tuple(alert.delivered_to or ()),
            )
        )
    session.flush()
    return claimed


def _finish(session: Session, claim: Claimed, **values: Any) -> bool:
    """Update a row this worker still holds (same state and attempt). False if it lost it."""
    result = session.execute(
        sa.update(Alert)
        .where(
            col(Alert.id) == claim.id,
            col(Alert.state) == DeliveryState.SENDING,
            col(Alert.attempts) == claim.attempts,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def mark_delivered(
    session: Session,
    claim: Claimed,
    *,
    delivered_to: Sequence[str],
    logged_only: bool,
    now: datetime | None = None,
) -> bool:
    now = now or utcnow()
    ok = _finish(
        session,
        claim,
        state=DeliveryState.LOGGED if logged_only else DeliveryState.SENT,
        sent_at=now,
        next_attempt_at=None,
        last_error=None,
        delivered_to=list(delivered_to),
    )
    if ok and claim.is_digest:
        session.execute(
            sa.update(Alert)
            .where(col(Alert.digest_id) == claim.id)
            .values(sent_at=now)
            .execution_options(synchronize_session=False)
        )
    return ok


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Capped exponential backoff with jitter: in [d/2, d], d = min(cap, base * 2^(n-1))."""
    full: timedelta = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempts - 1))
    factor: float = (rng or random).uniform(0.5, 1.0)
    return full * factor


def mark_failed(
    session: Session,
    claim: Claimed,
    *,
    error: str,
    delivered_to: Sequence[str],
    max_attempts: int = MAX_ATTEMPTS,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> DeliveryState | None:
    """Record a failed attempt: retry later, or give up. The new state, or None if lost."""
    now = now or utcnow()
    gave_up = claim.attempts >= max_attempts
    state = DeliveryState.FAILED if gave_up else DeliveryState.PENDING
    ok = _finish(
        session,
        claim,
        state=state,
        next_attempt_at=None if gave_up else now + backoff(claim.attempts, rng),
        last_error=error[:2000],
        delivered_to=list(delivered_to),
    )
    return state if ok else None


def release(session: Session, claim: Claimed, *, now: datetime | None = None) -> bool:
    """Hand back a claimed alert that was not attempted (the run ran out of time)."""
    return _finish(
        session,
        claim,
        state=DeliveryState.PENDING,
        attempts=claim.attempts - 1,
        next_attempt_at=now or utcnow(),
    )
