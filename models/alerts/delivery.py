"""Delivering alert rows: claim a batch, then record every outcome of the batch (delivered,
failed: retry later or give up, released); the moves of :mod:`.states`. Each function runs
inside the caller's transaction, and each is one statement whatever the size of the batch
(recording adds one more when digests were delivered, for their members).

A claim sets ``sending`` and a lease (``next_attempt_at = now + SEND_LEASE``) in its own
committed transaction *before* anything is sent, so two workers never send the same row;
a worker killed mid-send leaves ``sending`` rows whose lease runs out and are claimed again
(at least once: a crash between the sends and the commit that records them sends them twice).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from models.alerts.grouping import hot
from models.alerts.states import DeliveryState
from models.db import is_postgres, update_many
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
    last_error: str | None = None

    def __post_init__(self) -> None:
        # As read from the row: JSON columns come back as lists (or NULL).
        object.__setattr__(self, "payload", dict(self.payload or {}))
        object.__setattr__(self, "delivered_to", tuple(self.delivered_to or ()))


#: The fields of a Claimed, read back from the claimed rows.
_CLAIMED = (
    "id",
    "attempts",
    "kind",
    "provider",
    "number",
    "campaign_id",
    "payload",
    "is_digest",
    "created_at",
    "delivered_to",
    "last_error",
)


def claim_due(session: Session, *, now: datetime | None = None, limit: int = 50) -> list[Claimed]:
    """Claim due alerts (pending, or sending with an expired lease) for this worker, in one
    ``UPDATE … WHERE id IN (SELECT … LIMIT …) RETURNING``; in id order.

    A waiting alert of a hot group (see :mod:`.grouping`) is left for the next digest
    instead of being sent on its own. PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so concurrent
    workers claim disjoint rows (SQLite's BEGIN IMMEDIATE serialises them).
    """
    now = now or utcnow()
    alerts: sa.Table = Alert.__table__  # type: ignore[attr-defined]
    # An alias: the same table as the UPDATE's would be correlated to it, not selected from.
    candidate = alerts.alias("candidate")
    due = (
        sa.select(candidate.c.id)
        .where(
            candidate.c.state.in_([DeliveryState.PENDING, DeliveryState.SENDING]),
            candidate.c.next_attempt_at <= now,
            sa.or_(
                candidate.c.is_digest,
                candidate.c.state == DeliveryState.SENDING,
                sa.not_(hot(candidate.c.kind, candidate.c.provider, candidate.c.campaign_id, now)),
            ),
        )
        .order_by(candidate.c.next_attempt_at, candidate.c.id)
        .limit(limit)
    )
    if is_postgres(session):
        due = due.with_for_update(skip_locked=True)
    rows = session.execute(
        sa.update(alerts)
        .where(alerts.c.id.in_(due.scalar_subquery()))
        .values(
            state=DeliveryState.SENDING,
            attempts=alerts.c.attempts + 1,
            next_attempt_at=now + SEND_LEASE,
        )
        .returning(*(alerts.c[f] for f in _CLAIMED))
    ).all()
    claimed = [Claimed(**{f: getattr(row, f) for f in _CLAIMED}) for row in rows]
    return sorted(claimed, key=lambda c: c.id)


@dataclass(frozen=True)
class Outcome:
    """What becomes of one claimed alert: the values its row takes if still held."""

    claim: Claimed
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime | None
    sent_at: datetime | None
    last_error: str | None
    delivered_to: list[str]


#: The columns an outcome sets (the same for every outcome: one statement for a batch).
_OUTCOME_COLUMNS = ("state", "attempts", "next_attempt_at", "sent_at", "last_error", "delivered_to")


def delivered(
    claim: Claimed, *, delivered_to: Sequence[str], logged_only: bool, now: datetime
) -> Outcome:
    state = DeliveryState.LOGGED if logged_only else DeliveryState.SENT
    return Outcome(claim, state, claim.attempts, None, now, None, list(delivered_to))


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Capped exponential backoff with jitter: in [d/2, d], d = min(cap, base * 2^(n-1))."""
    full: timedelta = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempts - 1))
    factor: float = (rng or random).uniform(0.5, 1.0)
    return full * factor


def failed(
    claim: Claimed,
    *,
    error: str,
    delivered_to: Sequence[str],
    now: datetime,
    max_attempts: int = MAX_ATTEMPTS,
    rng: random.Random | None = None,
) -> Outcome:
    """A failed attempt: retry later at a backoff, or give up after ``max_attempts``."""
    if claim.attempts >= max_attempts:
        return Outcome(
            claim,
            DeliveryState.FAILED,
            claim.attempts,
            None,
            None,
            error[:2000],
            list(delivered_to),
        )
    retry = now + backoff(claim.attempts, rng)
    return Outcome(
        claim, DeliveryState.PENDING, claim.attempts, retry, None, error[:2000], list(delivered_to)
    )


def released(claim: Claimed, *, now: datetime) -> Outcome:
    """Handed back unattempted (the run ran out of time): due now, the attempt not counted."""
    return Outcome(
        claim,
        DeliveryState.PENDING,
        claim.attempts - 1,
        now,
        None,
        claim.last_error,
        list(claim.delivered_to),
    )


def record(session: Session, outcomes: Sequence[Outcome]) -> set[int]:
    """Save a batch's outcomes in one compare-and-set UPDATE: a row changes only if this
    worker still holds it (``sending``, same attempt). The ids saved; a delivered digest's
    members get its ``sent_at`` (one more statement)."""
    rows = [
        {
            "id": o.claim.id,
            "was_state": DeliveryState.SENDING.value,
            "was_attempts": o.claim.attempts,
            "state": o.state.value,
            "attempts": o.attempts,
            "next_attempt_at": o.next_attempt_at,
            "sent_at": o.sent_at,
            "last_error": o.last_error,
            "delivered_to": o.delivered_to,
        }
        for o in outcomes
    ]
    saved = update_many(session, Alert, rows, assign=_OUTCOME_COLUMNS, match=("state", "attempts"))
    digests = [o for o in outcomes if o.claim.is_digest and o.sent_at and o.claim.id in saved]
    if digests:
        session.execute(
            sa.update(Alert)
            .where(col(Alert.digest_id).in_([o.claim.id for o in digests]))
            .values(sent_at=digests[0].sent_at)
            .execution_options(synchronize_session=False)
        )
    return saved


def mark_delivered(
    session: Session,
    claim: Claimed,
    *,
    delivered_to: Sequence[str],
    logged_only: bool,
    now: datetime | None = None,
) -> bool:
    """One claim delivered; False if this worker no longer held it (its lease ran out)."""
    outcome = delivered(
        claim, delivered_to=delivered_to, logged_only=logged_only, now=now or utcnow()
    )
    return claim.id in record(session, [outcome])
