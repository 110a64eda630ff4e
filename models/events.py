"""Outbound events: every audit row becomes one signed POST to each EVENT_WEBHOOK_URLS entry.

Why an outbox table and not a cursor over ``link_events`` ids: ids come from a sequence and
commit out of order (a transaction holding id 100 may commit after the one holding 101), so
a "last id seen" cursor can skip an event for good. An outbox row written in the audit
row's own transaction is consumed only once it is visible, whatever the commit order, so no
event is ever skipped.

The outbox row is written by a database trigger on ``link_events`` (migration 0005), the
way the audit log's append-only rule is kept: every writer of audit rows, single-row or
set-based, present or future, gets its outbox rows in the same transaction without a line
of its own and without one more statement per batch.

Pipeline (each step a bounded batch, one statement per batch for claiming and marking):

1. the ``link_events_outbox`` trigger - every audit row INSERT adds its outbox row;
2. :func:`fan_out` - outbox rows become one ``event_deliveries`` row per URL, then are
   deleted;
3. :func:`claim_due` - a URL's due deliveries are claimed (``sending`` plus a lease), but
   only the earliest open delivery of each number: events of one number go out in order
   per URL, a later event waits for the earlier one (delivered, rejected or given up);
4. :func:`finish` - outcomes recorded: delivered, rejected (a 4xx other than 408/409/429:
   no more retries), retried with jittered exponential backoff (honouring Retry-After)
   while the event is younger than ``RETRY_FOR``, else failed (gave up).

The body is rendered from the immutable audit row (:func:`body`), so every attempt sends
the same bytes with the same ``webhook-id``; only ``webhook-timestamp`` and the signature
are per attempt (Standard Webhooks receivers refuse timestamps older than 5 minutes).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from models.db import is_postgres
from models.tables import EventDelivery, EventOutbox, LinkEvent, utcnow

DELIVERIES: sa.Table = EventDelivery.__table__  # type: ignore[attr-defined]
#: The columns a new delivery row is inserted with (fan-out and redeliver alike).
NEW_DELIVERY_COLUMNS = (
    "url_key",
    "event_id",
    "link_id",
    "state",
    "attempts",
    "next_attempt_at",
    "created_at",
)

# --- delivery states ---------------------------------------------------------------------
PENDING = "pending"
SENDING = "sending"
DELIVERED = "delivered"
#: The receiver refused it for good (a 4xx other than 408/409/429).
REJECTED = "rejected"
#: Retried for RETRY_FOR without success.
FAILED = "failed"
OPEN = (PENDING, SENDING)
STATES = (PENDING, SENDING, DELIVERED, REJECTED, FAILED)

# --- policy ------------------------------------------------------------------------------
EVENT_TYPE = "link.state_changed"
RETRY_FOR = timedelta(hours=24)
BACKOFF_BASE = timedelta(seconds=5)
BACKOFF_CAP = timedelta(hours=1)
#: A claimed delivery belongs to its worker this long (then it is claimed again).
SEND_LEASE = timedelta(seconds=60)


def webhook_id(event_id: int) -> str:
    """The ``webhook-id`` of an event: the same on every attempt and redelivery."""
    return f"evt_{event_id}"


def body(event: LinkEvent) -> bytes:
    """The event's JSON body (DESIGN §4), byte-identical on every attempt."""
    doc = {
        "type": EVENT_TYPE,
        "timestamp": event.recorded_at.isoformat(),
        "data": {
            "event_id": event.id,
            "provider": event.provider,
            "number": event.number,
            "campaign_id": event.campaign_id,
            "from_state": event.from_state,
            "to_state": event.to_state,
            "generation": event.generation,
            "source": event.source,
            "reason": event.reason,
            "recorded_at": event.recorded_at.isoformat(),
        },
    }
    return json.dumps(doc, separators=(",", ":")).encode()


# --- 1. the outbox -------------------------------------------------------------------------


# --- 2. fan-out ----------------------------------------------------------------------------


def fan_out(
    session: Session, url_keys: Sequence[str], *, now: datetime | None = None, limit: int = 500
) -> int:
    """Turn up to ``limit`` outbox rows into deliveries for every URL. Returns rows consumed.

    With no URLs the rows are dropped (EVENT_WEBHOOK_URLS unset: no events). Outbox rows are
    taken in id order; a number's events commit in order (its row is locked), so its earlier
    events are always fanned out no later than its later ones.
    """
    now = now or utcnow()
    stmt = select(EventOutbox.id).order_by(col(EventOutbox.id)).limit(limit)
    if is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True)
    ids = list(session.exec(stmt).all())
    if not ids:
        return 0
    for key in url_keys:
        session.execute(
            sa.insert(DELIVERIES).from_select(
                NEW_DELIVERY_COLUMNS,
                sa.select(
                    sa.literal(key),
                    col(EventOutbox.event_id),
                    col(EventOutbox.link_id),
                    sa.literal(PENDING),
                    sa.literal(0),
                    sa.literal(now, type_=DELIVERIES.c.next_attempt_at.type),
                    col(EventOutbox.created_at),
                ).where(col(EventOutbox.id).in_(ids)),
            )
        )
    session.execute(
        sa.delete(EventOutbox)
        .where(col(EventOutbox.id).in_(ids))
        .execution_options(synchronize_session=False)
    )
    return len(ids)


# --- 3. claiming ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """A claimed delivery with what is needed to send it, detached from any session."""

    id: int
    url_key: str
    attempts: int
    event_id: int
    created_at: datetime
    body: bytes


def claim_due(
    session: Session, url_key: str, *, now: datetime | None = None, limit: int = 100
) -> list[Claimed]:
    """Claim this URL's due deliveries, only the earliest open one per number.

    One UPDATE ... RETURNING: due (pending, or sending with an expired lease) and no earlier
    open delivery of the same number to the same URL.
    """
    now = now or utcnow()
    cand = DELIVERIES.alias("cand")
    earlier = DELIVERIES.alias("earlier")
    blocked = (
        sa.exists()
        .where(
            earlier.c.url_key == cand.c.url_key,
            earlier.c.link_id == cand.c.link_id,
            earlier.c.event_id < cand.c.event_id,
            earlier.c.state.in_(OPEN),
        )
        .correlate(cand)
    )
    due = (
        sa.select(cand.c.id)
        .where(
            cand.c.url_key == url_key,
            cand.c.state.in_(OPEN),
            cand.c.next_attempt_at <= now,
            ~blocked,
        )
        .order_by(cand.c.next_attempt_at, cand.c.event_id)
        .limit(limit)
    )
    if is_postgres(session):
        due = due.with_for_update(skip_locked=True, of=cand)
    claimed = session.execute(
        sa.update(EventDelivery)
        .where(col(EventDelivery.id).in_(due.scalar_subquery()))
        .values(
            state=SENDING,
            attempts=col(EventDelivery.attempts) + 1,
            next_attempt_at=now + SEND_LEASE,
        )
        .returning(
            col(EventDelivery.id),
            col(EventDelivery.attempts),
            col(EventDelivery.event_id),
            col(EventDelivery.created_at),
        )
        .execution_options(synchronize_session=False)
    ).all()
    if not claimed:
        return []
    events = {
        e.id: e
        for e in session.exec(
            select(LinkEvent).where(col(LinkEvent.id).in_([row[2] for row in claimed]))
        ).all()
    }
    out = [
        Claimed(
            id=row[0],
            url_key=url_key,
            attempts=row[1],
            event_id=row[2],
            created_at=row[3],
            body=body(events[row[2]]),
        )
        for row in claimed
    ]
    return sorted(out, key=lambda c: c.event_id)


# --- 4. outcomes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to. ``retryable`` False with no error means delivered."""

    claim: Claimed
    status: int | None = None
    error: str | None = None
    retryable: bool = True
    retry_after: timedelta | None = None
    #: Not attempted (its URL was found dead earlier in the run): handed back unchanged.
    released: bool = False

    @property
    def delivered(self) -> bool:
        return self.error is None and not self.released


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Capped exponential backoff with jitter: in [d/2, d], d = min(cap, base * 2^(n-1))."""
    full: timedelta = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(30, max(0, attempts - 1)))
    return full * (rng or random).uniform(0.5, 1.0)


def result_of(outcome: Outcome, now: datetime) -> str:
    """``delivered``, ``rejected``, ``retry``, ``failed`` (gave up) or ``released``."""
    if outcome.released:
        return "released"
    if outcome.delivered:
        return DELIVERED
    if not outcome.retryable:
        return REJECTED
    return "retry" if now - outcome.claim.created_at < RETRY_FOR else FAILED


def finish(
    session: Session,
    outcomes: Sequence[Outcome],
    *,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> dict[str, int]:
    """Record a batch of outcomes (one statement per kind). Returns counts per result."""
    now = now or utcnow()
    counts: dict[str, int] = {}
    rows: list[dict[str, object]] = []
    for o in outcomes:
        result = result_of(o, now)
        counts[result] = counts.get(result, 0) + 1
        if result == "released":
            row: dict[str, object] = {
                "state": PENDING,
                "attempts": o.claim.attempts - 1,
                "next_attempt_at": now,
            }
        elif result == DELIVERED:
            row = {"state": DELIVERED, "delivered_at": now, "next_attempt_at": None}
            row |= {"last_status": o.status, "last_error": None}
        elif result == "retry":
            wait = backoff(o.claim.attempts, rng)
            if o.retry_after is not None:
                wait = max(wait, min(o.retry_after, BACKOFF_CAP))
            row = {"state": PENDING, "next_attempt_at": now + wait}
            row |= {"last_status": o.status, "last_error": (o.error or "")[:2000]}
        else:  # rejected or failed: no more attempts
            row = {"state": result, "next_attempt_at": None}
            row |= {"last_status": o.status, "last_error": (o.error or "")[:2000]}
        # Bind names must differ from column names in an UPDATE's SET clause.
        params = {f"v_{k}": v for k, v in row.items()}
        rows.append({"b_id": o.claim.id, "b_attempts": o.claim.attempts, **params})
    by_shape: dict[tuple[str, ...], list[dict[str, object]]] = {}
    for row in rows:
        by_shape.setdefault(tuple(sorted(row)), []).append(row)
    table = DELIVERIES
    for shape, batch in by_shape.items():
        values: dict[str, Any] = {k[2:]: sa.bindparam(k) for k in shape if k.startswith("v_")}
        # Only rows this worker still holds (same state and attempt): executemany, one statement.
        session.execute(
            sa.update(table)
            .where(
                table.c.id == sa.bindparam("b_id"),
                table.c.state == SENDING,
                table.c.attempts == sa.bindparam("b_attempts"),
            )
            .values(values),
            batch,
        )
    return counts


# --- operator actions and reports ------------------------------------------------------------


def redeliver(
    session: Session,
    *,
    since: datetime,
    url_keys: Sequence[str],
    now: datetime | None = None,
) -> int:
    """Send again every event recorded at or after ``since`` to the given URLs.

    Existing deliveries are reset to pending (same id and body); events with no delivery row
    for a URL (recorded while it was not configured) get one. Returns deliveries scheduled.
    """
    now = now or utcnow()
    reset = session.execute(
        sa.update(EventDelivery)
        .where(
            col(EventDelivery.url_key).in_(url_keys),
            col(EventDelivery.event_id).in_(
                select(LinkEvent.id).where(col(LinkEvent.recorded_at) >= since)
            ),
        )
        .values(state=PENDING, attempts=0, next_attempt_at=now, created_at=now, last_error=None)
        .returning(col(EventDelivery.id))
        .execution_options(synchronize_session=False)
    )
    total = len(reset.all())
    for key in url_keys:
        missing = ~sa.exists().where(
            col(EventDelivery.url_key) == key, col(EventDelivery.event_id) == col(LinkEvent.id)
        )
        added = session.execute(
            sa.insert(DELIVERIES)
            .from_select(
                NEW_DELIVERY_COLUMNS,
                sa.select(
                    sa.literal(key),
                    col(LinkEvent.id),
                    col(LinkEvent.link_id),
                    sa.literal(PENDING),
                    sa.literal(0),
                    sa.literal(now, type_=DELIVERIES.c.next_attempt_at.type),
                    sa.literal(now, type_=DELIVERIES.c.created_at.type),
                ).where(col(LinkEvent.recorded_at) >= since, missing),
            )
            .returning(DELIVERIES.c.id)
        )
        total += len(added.all())
    return total


def oldest_undelivered(session: Session) -> datetime | None:
    """When the oldest event not yet delivered everywhere was recorded (None if none)."""
    waiting = session.exec(select(sa.func.min(EventOutbox.created_at))).one()
    open_ = session.exec(
        select(sa.func.min(EventDelivery.created_at)).where(col(EventDelivery.state).in_(OPEN))
    ).one()
    times = [t for t in (waiting, open_) if t is not None]
    return min(times) if times else None


def delivery_counts(session: Session) -> dict[str, int]:
    rows = session.exec(
        select(EventDelivery.state, sa.func.count()).group_by(col(EventDelivery.state))
    ).all()
    return {state: int(n) for state, n in rows}


@dataclass(frozen=True)
class EventRow:
    event: LinkEvent
    deliveries: list[EventDelivery]


def recent(
    session: Session,
    *,
    since: datetime | None = None,
    number: str | None = None,
    limit: int = 100,
) -> list[EventRow]:
    """Recent audit rows (newest first) with their delivery rows per URL."""
    stmt = select(LinkEvent)
    if since is not None:
        stmt = stmt.where(col(LinkEvent.recorded_at) >= since)
    if number is not None:
        stmt = stmt.where(col(LinkEvent.number) == number)
    events = list(
        session.exec(
            stmt.order_by(col(LinkEvent.recorded_at).desc(), col(LinkEvent.id).desc()).limit(limit)
        ).all()
    )
    ids = [e.id for e in events]
    deliveries: dict[int, list[EventDelivery]] = {}
    if ids:
        for d in session.exec(
            select(EventDelivery)
            .where(col(EventDelivery.event_id).in_(ids))
            .order_by(col(EventDelivery.url_key))
        ).all():
            deliveries.setdefault(d.event_id, []).append(d)
    return [EventRow(e, deliveries.get(e.id or 0, [])) for e in events]


def delete_finished(
    session: Session, *, older_than: timedelta, now: datetime | None = None, limit: int = 1000
) -> int:
    """Delete up to ``limit`` finished deliveries (delivered, rejected, given up) created
    before the retention cutoff; return how many went. Open ones are never touched, so the
    per-number order holds; the audit rows stay, and ``redeliver`` recreates what it needs."""
    cutoff = (now or utcnow()) - older_than
    ids = select(EventDelivery.id).where(
        col(EventDelivery.state).in_([DELIVERED, REJECTED, FAILED]),
        col(EventDelivery.created_at) < cutoff,
    )
    result = session.connection().execute(
        sa.delete(DELIVERIES)
        .where(DELIVERIES.c.id.in_(ids.order_by(col(EventDelivery.id)).limit(limit)))
        .where(DELIVERIES.c.state.in_([DELIVERED, REJECTED, FAILED]))
    )
    return int(result.rowcount or 0)
