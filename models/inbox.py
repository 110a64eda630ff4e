"""The webhook inbox: every accepted delivery is stored here before the provider gets 2xx.

One row per (provider, dedupe key). A further delivery of the same event only bumps
``duplicate_deliveries``; its outcome is "duplicate" by construction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from models.db import insert_ignoring_conflicts, update_many
from models.tables import InboxItem, utcnow

#: A row that fails this many times is marked failed and alerted, never retried forever.
MAX_ATTEMPTS = 5


#: The outcome beside the state machine's verdicts (applied, duplicate, stale, ignored).
FAILED = "failed"


@dataclass(frozen=True)
class Stored:
    id: int
    new: bool


def store_delivery(
    session: Session,
    provider: str,
    dedupe_key: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: datetime | None = None,
) -> Stored:
    """Insert a delivery, or count it as a duplicate of the stored one."""
    now = now or utcnow()
    new_id = insert_ignoring_conflicts(
        session,
        InboxItem,
        {
            "provider": provider,
            "dedupe_key": dedupe_key[:255],
            "body": body,
            "headers": dict(headers),
            "received_at": now,
            "duplicate_deliveries": 0,
            "attempts": 0,
        },
    )
    if new_id is not None:
        return Stored(new_id, True)
    key = (col(InboxItem.provider) == provider, col(InboxItem.dedupe_key) == dedupe_key[:255])
    row_id = session.execute(
        sa.update(InboxItem)
        .where(*key)
        .values(duplicate_deliveries=col(InboxItem.duplicate_deliveries) + 1)
        .returning(col(InboxItem.id))
        .execution_options(synchronize_session=False)
    ).scalar_one()
    return Stored(int(row_id), False)


def lock_unprocessed(session: Session, inbox_id: int) -> InboxItem | None:
    """The row, locked, if it still waits for an outcome (a redelivered task finds None)."""
    return session.exec(
        select(InboxItem)
        .where(InboxItem.id == inbox_id, col(InboxItem.outcome).is_(None))
        .with_for_update(skip_locked=True)
    ).first()


def lock_unprocessed_many(session: Session, ids: Sequence[int]) -> list[InboxItem]:
    """The rows that still wait for an outcome, locked, in id order (others are skipped:
    already processed, or being processed by another worker)."""
    return list(
        session.exec(
            select(InboxItem)
            .where(col(InboxItem.id).in_(ids), col(InboxItem.outcome).is_(None))
            .order_by(col(InboxItem.id))
            .with_for_update(skip_locked=True)
        ).all()
    )


def record_outcomes(
    session: Session, outcomes: Mapping[int, tuple[str, str | None]], *, now: datetime | None = None
) -> None:
    """Record each row's (outcome, reason) and count the attempt, in one statement."""
    rows = [
        {"id": inbox_id, "outcome": outcome, "reason": reason[:2000] if reason else None}
        for inbox_id, (outcome, reason) in outcomes.items()
    ]
    update_many(
        session,
        InboxItem,
        rows,
        assign=("outcome", "reason"),
        extra={"attempts": col(InboxItem.attempts) + 1, "processed_at": now or utcnow()},
    )


def unprocessed_ids(
    session: Session, *, older_than: timedelta, now: datetime | None = None, limit: int = 1000
) -> Sequence[int]:
    """Rows still without an outcome after the grace period (for the sweeper)."""
    cutoff = (now or utcnow()) - older_than
    stmt = (
        select(InboxItem.id)
        .where(col(InboxItem.outcome).is_(None), col(InboxItem.received_at) < cutoff)
        .order_by(col(InboxItem.received_at))
        .limit(limit)
    )
    return [i for i in session.exec(stmt).all() if i is not None]
