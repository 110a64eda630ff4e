"""Applying stored webhook deliveries, and sweeping the ones never processed.

A task's rows are applied as one batch in one transaction (``models.apply``: a constant
number of statements however many rows) and each records exactly one outcome. A row whose
parsing raises is counted and retried by the sweeper; should the batch fail as a whole, each
row is applied alone, so a row that breaks a statement is isolated the same way. After
``MAX_ATTEMPTS`` a row is marked failed and alerted: one poison row never blocks the others
or loops forever.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta

import sqlalchemy as sa
import structlog
from sqlmodel import Session

from common.metrics import INBOX_OUTCOMES
from models.alerts.outbox import raise_alert
from models.apply import Item, apply_batch
from models.db import transaction
from models.inbox import (
    FAILED,
    MAX_ATTEMPTS,
    lock_unprocessed,
    lock_unprocessed_many,
    record_outcomes,
    unprocessed_ids,
)
from models.polling import poll_soon
from models.statemachine import AlertKind, Observation, Source, Verdict
from models.tables import InboxItem, utcnow
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


def process_inbox(
    engine: sa.Engine, handlers: Mapping[str, CallbackHandler], inbox_ids: Iterable[int]
) -> dict[int, str]:
    """Apply the rows as one batch; return the outcomes recorded by this call.

    Should the batch's transaction fail (a row breaks a statement, the database went away),
    nothing of it is kept and each row is applied alone; a row that fails alone is counted.
    """
    ids = list(dict.fromkeys(inbox_ids))
    if len(ids) > 1:
        try:
            return _apply_rows(engine, handlers, ids)
        except Exception as exc:
            log.warning("inbox batch failed; one row at a time", rows=len(ids), error=str(exc))
    outcomes: dict[int, str] = {}
    for inbox_id in ids:
        try:
            outcomes |= _apply_rows(engine, handlers, [inbox_id])
        except Exception as exc:
            log.warning("inbox row failed", inbox_id=inbox_id, error=str(exc))
            if _record_failure(engine, inbox_id, exc):
                outcomes[inbox_id] = FAILED
    return outcomes


def _apply_rows(
    engine: sa.Engine, handlers: Mapping[str, CallbackHandler], ids: list[int]
) -> dict[int, str]:
    """Parse and apply the rows still waiting, in one transaction; their outcomes."""
    results: dict[int, tuple[str, str | None]] = {}
    providers: dict[int, str] = {}
    failed: list[tuple[int, Exception]] = []
    with transaction(engine) as session:
        now = utcnow()
        items: list[Item] = []
        for row in lock_unprocessed_many(session, ids):
            assert row.id is not None
            providers[row.id] = row.provider
            try:
                parsed = _parse(row, handlers.get(row.provider))
            except Exception as exc:  # a poison row: counted below, the others go on
                log.warning("inbox row failed", inbox_id=row.id, error=str(exc))
                failed.append((row.id, exc))
                continue
            if isinstance(parsed, Item):
                items.append(parsed)
            else:
                results[row.id] = parsed
        for item, decision in zip(items, apply_batch(session, items, now=now), strict=True):
            assert item.inbox_id is not None
            results[item.inbox_id] = (decision.verdict.value, decision.reason)
        # The callback is a hint: poll the number now, whatever the verdict.
        poll_soon(session, ((i.provider, i.number) for i in items), now=now)
        record_outcomes(session, results, now=now)
    for inbox_id, (outcome, _) in results.items():  # counted once committed
        INBOX_OUTCOMES.labels(providers[inbox_id], outcome).inc()
    outcomes = {inbox_id: outcome for inbox_id, (outcome, _) in results.items()}
    for inbox_id, error in failed:
        if _record_failure(engine, inbox_id, error):
            outcomes[inbox_id] = FAILED
    return outcomes


def _parse(row: InboxItem, handler: CallbackHandler | None) -> Item | tuple[str, str | None]:
    """The observation a stored delivery carries, or its outcome when it carries none."""
    if handler is None:
        return Verdict.IGNORED.value, f"provider {row.provider} is off"
    event = handler.parse(stored_request(row))
    if not event.relevant or event.number is None:
        return Verdict.IGNORED.value, event.ignore_reason or "not about a number assignment"
    obs = Observation(
        source=Source.WEBHOOK,
        provider_status=event.provider_status,
        # Ordered by the provider's time, but never later than we received it: a provider
        # clock running ahead must not make our next polls look stale.
        observed_at=min(event.provider_time or row.received_at, row.received_at),
        signal=event.signal,
        direction=event.direction,
        campaign_id=event.campaign_id,
        reason=event.reason,
        provider_time=event.provider_time,
        retry_once=event.retry_once,
    )
    return Item(row.provider, event.number, obs, inbox_id=row.id)


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
