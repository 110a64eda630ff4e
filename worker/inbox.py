"""Applying stored webhook deliveries, and sweeping the ones never processed.

Each row is applied under a row lock and records exactly one outcome. A task's rows share
one transaction, each inside its own savepoint, so a batch costs one commit (bench/: the
commit per row was the limit); a row that raises rolls back only its savepoint. A row that
raises is retried by the sweeper; after ``MAX_ATTEMPTS`` it is marked failed and alerted, so
one poison row never blocks the others or loops forever.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta

import sqlalchemy as sa
import structlog
from sqlmodel import Session, col, select

from common.metrics import INBOX_OUTCOMES
from models.alerts import raise_alert
from models.db import transaction
from models.inbox import FAILED, MAX_ATTEMPTS, lock_unprocessed, record_outcome, unprocessed_ids
from models.links import apply_observation
from models.statemachine import AlertKind, Observation, Source, Verdict
from models.tables import InboxItem, Link, utcnow
from providers.base import CallbackHandler, CallbackRequest

log = structlog.get_logger(__name__)


def stored_request(item: InboxItem) -> CallbackRequest:
    headers = dict(item.headers)
    return CallbackRequest(
        method=headers.pop(":method", "POST"),
        url=headers.pop(":url", ""),
        headers=headers,
        body=item.body,
        content_type=headers.get("content-type", ""),
        query=dict(_query(headers.pop(":query", ""))),
    )


def _query(qs: str) -> Iterable[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(qs, keep_blank_values=True)


def _apply_one(
    session: Session, item: InboxItem, handler: CallbackHandler
) -> tuple[str, str | None]:
    event = handler.parse(stored_request(item))
    if not event.relevant or event.number is None:
        return Verdict.IGNORED.value, event.ignore_reason or "not about a number assignment"
    obs = Observation(
        source=Source.WEBHOOK,
        provider_status=event.provider_status,
        # Ordered by the provider's time, but never later than we received it: a provider
        # clock running ahead must not make our next polls look stale.
        observed_at=min(event.provider_time or item.received_at, item.received_at),
        signal=event.signal,
        direction=event.direction,
        campaign_id=event.campaign_id,
        reason=event.reason,
        provider_time=event.provider_time,
        retry_once=event.retry_once,
    )
    decision = apply_observation(session, item.provider, event.number, obs, inbox_id=item.id)
    # The callback is a hint: poll the number now, whatever the verdict.
    session.execute(
        sa.update(Link)
        .where(col(Link.provider) == item.provider, col(Link.number) == event.number)
        .values(next_poll_at=utcnow(), poll_attempts=0)
        .execution_options(synchronize_session=False)
    )
    return decision.verdict.value, decision.reason


def process_inbox(
    engine: sa.Engine, handlers: Mapping[str, CallbackHandler], inbox_ids: Iterable[int]
) -> dict[int, str]:
    """Apply the rows (one transaction, a savepoint per row); return the outcomes recorded.

    Should the shared transaction itself fail (the database went away, a failed commit),
    nothing of it is kept and the rows are applied one transaction each, as before batching.
    """
    ids = list(dict.fromkeys(inbox_ids))
    if len(ids) > 1:
        try:
            return _process_batch(engine, handlers, ids)
        except Exception as exc:
            log.warning("inbox batch failed; one row at a time", rows=len(ids), error=str(exc))
    return _process_each(engine, handlers, ids)


def _outcome_of(session: Session, item: InboxItem, handlers: Mapping[str, CallbackHandler]) -> str:
    handler = handlers.get(item.provider)
    reason: str | None
    if handler is None:
        outcome, reason = Verdict.IGNORED.value, f"provider {item.provider} is off"
    else:
        outcome, reason = _apply_one(session, item, handler)
    record_outcome(item, outcome, reason)
    return outcome


def _process_batch(
    engine: sa.Engine, handlers: Mapping[str, CallbackHandler], ids: list[int]
) -> dict[int, str]:
    outcomes: dict[int, str] = {}
    counted: list[tuple[str, str]] = []
    failed: list[tuple[int, Exception]] = []
    with transaction(engine) as session:
        for item in lock_unprocessed_many(session, ids):
            item_id, provider = item.id, item.provider
            assert item_id is not None
            try:
                with session.begin_nested():
                    outcome = _outcome_of(session, item, handlers)
            except Exception as exc:
                log.warning("inbox row failed", inbox_id=item_id, error=str(exc))
                failed.append((item_id, exc))
                continue
            outcomes[item_id] = outcome
            counted.append((provider, outcome))
    for provider, outcome in counted:  # counted once committed
        INBOX_OUTCOMES.labels(provider, outcome).inc()
    for inbox_id, error in failed:
        if _record_failure(engine, inbox_id, error):
            outcomes[inbox_id] = FAILED
    return outcomes


def _process_each(
    engine: sa.Engine, handlers: Mapping[str, CallbackHandler], inbox_ids: Iterable[int]
) -> dict[int, str]:
    """Apply each row in its own transaction; return the outcomes recorded by this call."""
    outcomes: dict[int, str] = {}
    for inbox_id in inbox_ids:
        try:
            with transaction(engine) as session:
                item = lock_unprocessed(session, inbox_id)
                if item is None:
                    continue  # already processed, or being processed by another worker
                outcome = _outcome_of(session, item, handlers)
                outcomes[inbox_id] = outcome
                provider = item.provider
            INBOX_OUTCOMES.labels(provider, outcome).inc()  # counted once committed
        except Exception as exc:
            log.warning("inbox row failed", inbox_id=inbox_id, error=str(exc))
            if _record_failure(engine, inbox_id, exc):
                outcomes[inbox_id] = FAILED
    return outcomes


def lock_unprocessed_many(session: Session, ids: list[int]) -> list[InboxItem]:
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


def _record_failure(engine: sa.Engine, inbox_id: int, exc: Exception) -> bool:
    """Count a failed attempt; give up (failed + alert) after MAX_ATTEMPTS. True if gave up."""
    with transaction(engine) as session:
        item = lock_unprocessed(session, inbox_id)
        if item is None:
            return False
        item.attempts += 1
        item.error = f"{type(exc).__name__}: {exc}"[:2000]
        if item.attempts < MAX_ATTEMPTS:
            return False
        item.outcome = FAILED
        item.processed_at = utcnow()
        raise_alert(
            session,
            AlertKind.DELIVERY_FAILED,
            key_extra=f"inbox:{inbox_id}",
            reason=f"webhook delivery {inbox_id} failed {item.attempts} times: {item.error}",
            payload={"provider": item.provider, "inbox_id": inbox_id},
        )
        provider = item.provider
    INBOX_OUTCOMES.labels(provider, FAILED).inc()
    return True


def sweep_inbox(
    engine: sa.Engine, enqueue: Callable[[list[int]], None], *, grace: timedelta, batch: int = 50
) -> int:
    """Re-enqueue rows still unprocessed after ``grace``. Idempotent: processing is."""
    with Session(engine) as session:
        ids = list(unprocessed_ids(session, older_than=grace))
    for start in range(0, len(ids), batch):
        enqueue(ids[start : start + batch])
    return len(ids)


def pending_count(engine: sa.Engine) -> int:
    with Session(engine) as session:
        return len(session.exec(select(InboxItem.id).where(col(InboxItem.outcome).is_(None))).all())
