"""Applying stored webhook deliveries, and sweeping the ones never processed.

A task's rows are applied as one batch in one transaction (``models.apply``: a constant
number of statements however many rows) and each records exactly one outcome. A row whose
parsing raises is counted and retried by the sweeper; should the batch fail as a whole, each
row is applied alone, so a row that breaks a statement is isolated the same way. After
``MAX_ATTEMPTS`` a row is marked failed and alerted: one poison row never blocks the others
or loops forever.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
import structlog
from sqlmodel import Session

from common.metrics import INBOX_OUTCOMES
from models.alerts.outbox import raise_alert
from models.apply import Item, apply_batch
from models.db import pairs_in, transaction
from models.events import delete_finished
from models.inbox import (
    FAILED,
    MAX_ATTEMPTS,
    delete_expired,
    lock_unprocessed,
    lock_unprocessed_many,
    record_outcomes,
    unprocessed_ids,
)
from models.polling import poll_soon
from models.statemachine import AlertKind, Observation, Source, Verdict
from models.tables import InboxItem, Link, utcnow
from providers.base import CallbackEvent, CallbackHandler, Trust
from providers.delivery import stored_event

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Hint:
    """A callback that only hints: its number is polled now, nothing of its body applied."""

    number: str | None
    outcome: str = Verdict.IGNORED.value
    reason: str = "the signature does not cover the body: nothing applied, the number polled now"


def hint_only(event: CallbackEvent, trust: Trust) -> Hint | None:
    """A :class:`Hint` for a callback whose signature does not cover its body (Plivo V2);
    ``None`` for one that may be applied.

    Anyone holding one such signature could have written the body, so none of it is
    applied; its number is only polled sooner, and the poll tells the truth.
    """
    return Hint(event.number) if trust is Trust.SENDER else None


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
    hinted: list[tuple[str, str]] = []
    with transaction(engine) as session:
        now = utcnow()
        items: list[Item] = []
        several_ids: dict[int, CallbackEvent] = {}
        for row in lock_unprocessed_many(session, ids):
            assert row.id is not None
            providers[row.id] = row.provider
            try:
                parsed = _parse(row, handlers.get(row.provider), several_ids)
            except Exception as exc:  # a poison row: counted below, the others go on
                log.warning("inbox row failed", inbox_id=row.id, error=str(exc))
                failed.append((row.id, exc))
                continue
            if isinstance(parsed, Item):
                items.append(parsed)
            elif isinstance(parsed, Hint):
                results[row.id] = (parsed.outcome, parsed.reason)
                if parsed.number is not None:
                    hinted.append((row.provider, parsed.number))
            else:
                results[row.id] = parsed
        items = _campaigns_as_linked(session, items, several_ids)
        # The callback is a hint: poll the number now, whatever the verdict.
        decisions = apply_batch(session, items, now=now, due_now=True)
        for item, decision in zip(items, decisions, strict=True):
            assert item.inbox_id is not None
            results[item.inbox_id] = (decision.verdict.value, decision.reason)
        poll_soon(session, hinted, now=now)
        record_outcomes(session, results, now=now)
    for inbox_id, (outcome, _) in results.items():  # counted once committed
        INBOX_OUTCOMES.labels(providers[inbox_id], outcome).inc()
    outcomes = {inbox_id: outcome for inbox_id, (outcome, _) in results.items()}
    for inbox_id, error in failed:
        if _record_failure(engine, inbox_id, error):
            outcomes[inbox_id] = FAILED
    return outcomes


def _parse(
    row: InboxItem, handler: CallbackHandler | None, several_ids: dict[int, CallbackEvent]
) -> Item | Hint | tuple[str, str | None]:
    """The observation a stored delivery carries (parsed by the web view, kept with the row),
    or its outcome when it carries none. A callback that names its campaign by several ids is
    left in ``several_ids``."""
    if handler is None:
        return Verdict.IGNORED.value, f"provider {row.provider} is off"
    event, trust = stored_event(row, handler)
    hint = hint_only(event, trust)
    if hint is not None:
        return hint
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
    if len(event.campaign_ids) > 1:
        assert row.id is not None
        several_ids[row.id] = event
    return Item(row.provider, event.number, obs, inbox_id=row.id)


def _campaigns_as_linked(
    session: Session, items: list[Item], several_ids: Mapping[int, CallbackEvent]
) -> list[Item]:
    """Name each callback's campaign as its link does. Telnyx names a campaign by its UUID
    (``campaignId``) and, for a shared one, by its TCR id (``tcrCampaignId``) too; a link on
    either id is this campaign, so the state machine's "another campaign" rule compares like
    with like. One query for the batch, and only for callbacks with several ids."""
    keys = {(i.provider, i.number) for i in items if i.inbox_id in several_ids}
    if not keys:
        return items
    table = Link.__table__  # type: ignore[attr-defined]
    rows = session.execute(
        sa.select(table.c.provider, table.c.number, table.c.campaign_id).where(
            pairs_in(session, table.c.provider, table.c.number, keys)
        )
    )
    linked = {(r.provider, r.number): r.campaign_id for r in rows}
    named: list[Item] = []
    for item in items:
        event = several_ids.get(item.inbox_id or -1)
        campaign = event.campaign_for(linked.get((item.provider, item.number))) if event else None
        if campaign is not None and campaign != item.obs.campaign_id:
            item = dataclasses.replace(
                item, obs=dataclasses.replace(item.obs, campaign_id=campaign)
            )
        named.append(item)
    return named


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


def purge_inbox(
    engine: sa.Engine, *, older_than: timedelta, batch: int = 1000, max_batches: int = 50
) -> int:
    """Delete processed rows past retention, and the finished deliveries of outbound events of
    that age, one short transaction per batch (no long lock, no huge WAL burst); at most
    ``max_batches`` of each per run, the next run goes on. Returns how many rows went."""
    deleted = 0
    for purge in (delete_expired, delete_finished):
        for _ in range(max_batches):
            with transaction(engine) as session:
                count = purge(session, older_than=older_than, limit=batch)
            deleted += count
            if count < batch:
                break
    return deleted
