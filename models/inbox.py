"""The webhook inbox: every accepted delivery is stored here before the provider gets 2xx.

One row per (provider, dedupe key). A further delivery of the same event only bumps
``duplicate_deliveries``; its outcome is "duplicate" by construction. Processed rows are
deleted after the retention period (``INBOX_RETENTION_DAYS``), so a redelivery is recognised
as a duplicate within that window; rows an audit row cites are kept with the audit log.
What a row's ``body``/``headers``/``event`` hold is :mod:`providers.delivery`'s business.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from models.db import insert_ignoring_conflicts, is_postgres, update_many
from models.tables import CallbackNonce, InboxItem, LinkEvent, utcnow

#: A row that fails this many times is marked failed and alerted, never retried forever.
MAX_ATTEMPTS = 5


#: The outcome beside the state machine's verdicts (applied, duplicate, stale, ignored).
FAILED = "failed"


_inbox: sa.Table = InboxItem.__table__  # type: ignore[attr-defined]
#: A further delivery of a stored event (built once: it runs on the webhook's path).
_COUNT_DUPLICATE = (
    sa.update(_inbox)
    .where(
        _inbox.c.provider == sa.bindparam("key_provider"),
        _inbox.c.dedupe_key == sa.bindparam("key_dedupe"),
    )
    .values(duplicate_deliveries=_inbox.c.duplicate_deliveries + 1)
    .returning(_inbox.c.id)
)


@dataclass(frozen=True)
class Stored:
    id: int
    new: bool


def store_delivery(
    session: Session | sa.Connection,
    provider: str,
    dedupe_key: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    event: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> Stored:
    """Insert a delivery, or count it as a duplicate of the stored one (a Core ``Connection``
    is the cheaper bind: the webhook's path)."""
    now = now or utcnow()
    values = {
        "provider": provider,
        "dedupe_key": dedupe_key[:255],
        "body": body,
        "headers": dict(headers),
        "received_at": now,
        "duplicate_deliveries": 0,
        "attempts": 0,
    }
    if event is not None:
        values["event"] = dict(event)
    key = {"key_provider": provider, "key_dedupe": dedupe_key[:255]}
    # Twice at most: retention may delete the stored row between the two statements.
    for _ in range(2):
        new_id = insert_ignoring_conflicts(session, InboxItem, values)
        if new_id is not None:
            return Stored(new_id, True)
        row_id = session.execute(_COUNT_DUPLICATE, key).scalar_one_or_none()
        if row_id is not None:
            return Stored(int(row_id), False)
    raise RuntimeError(f"inbox row {provider}/{dedupe_key[:40]} vanished twice while storing")


def remember_nonce(
    session: Session | sa.Connection,
    provider: str,
    nonce: str,
    request_digest: str,
    *,
    now: datetime | None = None,
) -> bool:
    """Record a signature's nonce with what it signed; False if it came before with another
    request (a signature replayed over a forged body). The same request again is fine: it is
    the provider's retry, deduplicated by the inbox."""
    values = {
        "provider": provider,
        "nonce": nonce[:255],
        "request_digest": request_digest,
        "received_at": now or utcnow(),
    }
    if is_postgres(session):
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    session.execute(insert(CallbackNonce).values(**values).on_conflict_do_nothing())
    stored = session.execute(
        select(CallbackNonce.request_digest).where(
            col(CallbackNonce.provider) == provider, col(CallbackNonce.nonce) == nonce[:255]
        )
    ).scalar_one()
    return bool(stored == request_digest)


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


def delete_expired(
    session: Session, *, older_than: timedelta, now: datetime | None = None, limit: int = 1000
) -> int:
    """Delete up to ``limit`` processed rows received before the retention cutoff, and the
    nonces of that age; return how many inbox rows went.

    Never a row still waiting for an outcome, and never one an audit row cites (the audit
    log is append-only and kept forever, and its ``inbox_id`` names the raw delivery).
    """
    cutoff = (now or utcnow()) - older_than
    cited = sa.exists().where(col(LinkEvent.inbox_id) == col(InboxItem.id))
    ids = [
        i
        for i in session.exec(
            select(InboxItem.id)
            .where(
                col(InboxItem.outcome).is_not(None),
                col(InboxItem.received_at) < cutoff,
                ~cited,
            )
            .order_by(col(InboxItem.id))
            .limit(limit)
        ).all()
        if i is not None
    ]
    if ids:
        session.execute(
            sa.delete(InboxItem)
            .where(col(InboxItem.id).in_(ids), col(InboxItem.outcome).is_not(None))
            .execution_options(synchronize_session=False)
        )
    old_nonces = (
        select(CallbackNonce.provider, CallbackNonce.nonce)
        .where(col(CallbackNonce.received_at) < cutoff)
        .limit(limit)
    )
    session.execute(
        sa.delete(CallbackNonce)
        .where(sa.tuple_(col(CallbackNonce.provider), col(CallbackNonce.nonce)).in_(old_nonces))
        .execution_options(synchronize_session=False)
    )
    return len(ids)
