"""Applying a batch of observations with a constant number of statements.

The set-based form of :func:`models.links.apply_observation`, shared by the inbox (webhook
deliveries) and the poller (provider answers); bench/ showed a round trip per row and step
was what bounded both. A batch is

1. locked: its links in one ``SELECT … FOR UPDATE`` ordered by id, so two batches sharing
   links take their locks in the same order and wait for each other instead of deadlocking;
2. decided in Python by the pure state machine, observation by observation in the given
   order, each against the link as the batch's earlier observations left it (two callbacks
   about one number give what applying them one after the other would);
3. saved: every changed link in one compare-and-set ``UPDATE … FROM (VALUES …)``, the audit
   rows of the links it updated in one multi-row INSERT, their alerts in one more.

A link whose compare-and-set loses (it changed after it was locked, which only a writer
bypassing the lock could do) is applied again, observation by observation, through the
single-row path. What a change writes comes from ``models.links`` (:func:`change_of`), so the
two paths cannot disagree; so does the automatic retry of a failure that woke a dormant
campaign (:func:`dormant_retry_due`, started once the batch is saved; the batch's later
observations of that number are then applied after it, one by one). The caller owns the
transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Session

from models import mapping
from models.alerts.outbox import alert_values
from models.db import insert_many, is_postgres, pairs_in, update_many
from models.links import (
    NOT_MANAGED,
    AlertArgs,
    apply_observation,
    change_of,
    dormant_retry_due,
    retry_dormant,
    snapshot,
    unknown_status_alert,
)
from models.polling import due_now_values, poll_soon
from models.statemachine import Decision, Observation, Verdict, decide
from models.tables import Alert, Link, LinkEvent, utcnow

Key = tuple[str, str]
#: The compare-and-set: a link is saved only if these still hold what was loaded.
CAS = ("state", "generation", "observed_at")


@dataclass(frozen=True)
class Item:
    """One observation of one number; ``inbox_id`` names the delivery it came from."""

    provider: str
    number: str
    obs: Observation
    inbox_id: int | None = None


def apply_batch(
    session: Session, items: Sequence[Item], *, now: datetime | None = None, due_now: bool = False
) -> list[Decision]:
    """Decide on and save every item (not committed); the decisions, in item order.

    ``due_now``: the items are callbacks, which are also hints: every observed link is made due
    now, its backoff reset (:func:`models.polling.poll_soon`), by the same UPDATE for the links
    the batch changes (a second UPDATE of every row was a tenth of a batch's time).
    """
    now = now or utcnow()
    links = lock_links(session, ((i.provider, i.number) for i in items))
    return save_batch(session, links, items, now=now, due_now=due_now)


def lock_links(session: Session, keys: Iterable[Key]) -> dict[Key, Link]:
    """The links of ``keys`` that exist, locked in id order, as detached copies."""
    wanted = set(keys)
    if not wanted:
        return {}
    table = Link.__table__  # type: ignore[attr-defined]
    stmt = (
        sa.select(table)
        .where(pairs_in(session, table.c.provider, table.c.number, wanted))
        .order_by(table.c.id)
    )
    if is_postgres(session):  # SQLite's BEGIN IMMEDIATE already serialises writers
        stmt = stmt.with_for_update(of=table)
    return {(r.provider, r.number): _plain(r._mapping) for r in session.execute(stmt)}


def save_batch(
    session: Session,
    links: Mapping[Key, Link],
    items: Sequence[Item],
    *,
    now: datetime,
    due_now: bool = False,
) -> list[Decision]:
    """Decide on ``items`` in order against ``links`` (as loaded) and save the results."""
    current = {key: _copy(link) for key, link in links.items()}
    decisions: list[Decision] = []
    events: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    raised: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    columns: set[str] = set()
    retrying: set[Key] = set()
    after_retry: set[int] = set()
    for index, item in enumerate(items):
        key = (item.provider, item.number)
        link = current.get(key)
        if link is None:
            decisions.append(Decision(Verdict.IGNORED, reason=NOT_MANAGED))
            continue
        if key in retrying:
            after_retry.add(index)
            decisions.append(Decision(Verdict.IGNORED))  # replaced below
            continue
        decision = decide(snapshot(link), item.obs)
        decisions.append(decision)
        unknown = unknown_status_alert(item.obs, decision)
        if unknown is not None:
            raised[key].append(_alert(link, unknown, now))
        if decision.verdict is not Verdict.APPLIED:
            continue
        retry = dormant_retry_due(session, link, item.obs, decision)
        if retry:
            retrying.add(key)
        change = change_of(
            link, item.obs, decision, now=now, inbox_id=item.inbox_id, retrying=retry
        )
        events[key].append(change.event)
        columns.update(change.values)
        for column, value in change.values.items():
            setattr(link, column, value)
        if change.alert is not None:
            raised[key].append(_alert(link, change.alert, now))

    due = due_now_values(now) if due_now else {}
    lost = _update_links(session, links, current, list(events), sorted(columns), due)
    insert_many(
        session, LinkEvent, [e for k, rows in events.items() if k not in lost for e in rows]
    )
    for index, (item, decision) in enumerate(zip(items, decisions, strict=True)):
        key = (item.provider, item.number)
        if index in after_retry:
            continue  # applied after the retry, below
        # Only when the mapping changed does this write (rare): no statement per row otherwise.
        if key in current and key not in lost and mapping.applies(decision):
            mapping.record(session, current[key], item.obs, now=now)
    _insert_alerts(session, [a for k, rows in raised.items() if k not in lost for a in rows])
    for provider, number in sorted(retrying - lost):
        retry_dormant(session, provider, number, now=now)
    for index, item in enumerate(items):
        if (item.provider, item.number) in lost or index in after_retry:
            decisions[index] = apply_observation(
                session, item.provider, item.number, item.obs, inbox_id=item.inbox_id, now=now
            )
    if due_now:  # the links the batch's UPDATE did not make due
        poll_soon(session, (set(current) - set(events)) | lost | retrying, now=now)
    return decisions


def _update_links(
    session: Session,
    before: Mapping[Key, Link],
    after: Mapping[Key, Link],
    changed: Sequence[Key],
    columns: Sequence[str],
    extra: Mapping[str, Any],
) -> set[Key]:
    """Save the changed links in one compare-and-set statement; the keys whose CAS lost."""
    rows = [
        {
            "id": before[key].id,
            **{f"was_{c}": getattr(before[key], c) for c in CAS},
            **{c: getattr(after[key], c) for c in columns},
        }
        for key in changed
    ]
    won = update_many(session, Link, rows, assign=columns, match=CAS, extra=extra)
    return {key for key in changed if before[key].id not in won}


def _insert_alerts(session: Session, rows: list[dict[str, Any]]) -> None:
    """One INSERT … ON CONFLICT DO NOTHING, in the order raised, the first of a key kept (as
    raising them one by one would). Their keys name links this batch holds locked, so two
    batches never insert the same keys at once."""
    first: dict[str, dict[str, Any]] = {}
    for row in rows:
        first.setdefault(row["dedupe_key"], row)
    insert_many(session, Alert, list(first.values()), ignore_conflicts=True)


def _alert(link: Link, alert: AlertArgs, now: datetime) -> dict[str, Any]:
    return alert_values(
        alert.kind, link=link, reason=alert.reason, key_extra=alert.key_extra, now=now
    )


def _plain(columns: Mapping[Any, Any]) -> Link:
    """A detached copy of a links row as plain attributes, typed as the :class:`Link` it mirrors.

    The batch only reads and sets columns, and building SQLModel objects (validation, ORM
    instrumentation) was a third of a batch's time in ``python -m bench.profile apply``.
    """
    return cast(Link, SimpleNamespace(**columns))


def _copy(link: Link) -> Link:
    return _plain(vars(link))
