"""The set-based apply path: the same result as the single-row path, in a constant number of
statements per batch, and a lost compare-and-set falls back to the single-row path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from models.apply import Item, apply_batch, lock_links, save_batch
from models.batch import Entry, link_numbers
from models.db import transaction
from models.links import (
    RETRY_REASON,
    apply_observation,
    load,
    request_link_of,
    request_unlink_of,
)
from models.statemachine import Direction, Observation, Signal, Source, State, Verdict
from models.tables import Alert, Link, LinkEvent
from tests.statements import counting

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
A, B = "+12025550131", "+12025550132"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def obs(
    signal: Signal | None,
    t: float,
    *,
    source: Source = Source.WEBHOOK,
    status: str | None = None,
    **kw: Any,
) -> Observation:
    return Observation(
        source=source,
        provider_status=status or str(signal),
        observed_at=at(t),
        signal=signal,
        **kw,
    )


def number(i: int) -> str:
    return f"+1202556{i:04d}"


def dormant(t: float) -> Observation:
    """Telnyx failing a dormant campaign's first assignment (the failure woke it up)."""
    return obs(Signal.FAILED, t, reason="campaign was dormant; reactivated", retry_once=True)


# Sequences of observations of one number, each applied in one batch and one by one.
SEQUENCES = {
    "callbacks in order, then a duplicate": [
        obs(Signal.PENDING, 1),
        obs(Signal.LINKED, 2, status="ASSIGNED"),
        obs(Signal.LINKED, 2, status="ASSIGNED"),
    ],
    "a stale callback after a newer one": [
        obs(Signal.LINKED, 5, status="ASSIGNED"),
        obs(Signal.PENDING, 3),
    ],
    "failure with its reason and alert": [
        obs(Signal.FAILED, 1, reason="not on a messaging profile"),
    ],
    "an unknown status, then a poll finding it on another campaign (drift)": [
        obs(None, 1, status="MYSTERY"),
        obs(Signal.LINKED, 2, source=Source.POLL, status="ASSIGNED", campaign_id="C9"),
        obs(Signal.NOT_LINKED, 3, source=Source.POLL, direction=Direction.UNLINK),
    ],
    "a dormant campaign's failure, retried once": [dormant(1)],
    "the retry failing the same way, not retried again": [dormant(1), dormant(11)],
    "a dormant failure, then the retry's callbacks in the same batch": [
        dormant(1),
        obs(Signal.PENDING, 11),
        obs(Signal.LINKED, 12, status="ASSIGNED"),
    ],
}


def _outcome(session: Session, num: str) -> tuple[Any, ...]:
    link = load(session, "telnyx", num, lock=False)
    assert link is not None
    events = session.exec(
        select(LinkEvent).where(LinkEvent.number == num).order_by(col(LinkEvent.id))
    ).all()
    alerts = session.exec(select(Alert).where(Alert.number == num).order_by(col(Alert.id))).all()
    return (
        (link.state, link.campaign_id, link.observed_at, link.provider_status),
        (link.failure_reason, link.drift, link.updated_at),
        [(e.from_state, e.to_state, e.drift, e.reason, e.campaign_id, e.source) for e in events],
        [(a.kind, a.payload["state"], a.payload["since"], a.payload["reason"]) for a in alerts],
    )


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_a_batch_saves_what_the_single_row_path_saves(engine: sa.Engine, name: str) -> None:
    observations = SEQUENCES[name]
    with transaction(engine) as s:
        for num in (A, B):
            request_link_of(s, "telnyx", num, "C1", source=Source.API, now=at(0))
    with transaction(engine) as s:
        batch = apply_batch(s, [Item("telnyx", A, o) for o in observations], now=at(10))
    single = []
    for o in observations:
        with transaction(engine) as s:
            single.append(apply_observation(s, "telnyx", B, o, now=at(10)))
    assert batch == single
    assert any(d.verdict is Verdict.APPLIED for d in batch)
    with Session(engine) as s:
        assert _outcome(s, A) == _outcome(s, B)


def test_a_number_not_managed_is_ignored(engine: sa.Engine) -> None:
    with transaction(engine) as s:
        (decision,) = apply_batch(s, [Item("telnyx", A, obs(Signal.LINKED, 1))], now=at(1))
    assert decision.verdict is Verdict.IGNORED
    assert decision.reason == "number is not managed by dlcsync"


@pytest.mark.parametrize("size", [1, 50, 500])
def test_statements_per_batch_do_not_grow_with_its_size(engine: sa.Engine, size: int) -> None:
    numbers = [number(i) for i in range(size)]
    with transaction(engine) as s:
        link_numbers(s, "plivo", "C1", [Entry(n) for n in numbers], source=Source.API, now=at(0))
    # Every observation changes its link, writes an audit row and raises an alert.
    items = [
        Item("plivo", n, obs(Signal.FAILED, 1, source=Source.POLL, reason="refused"))
        for n in numbers
    ]
    with counting(engine) as statements, transaction(engine) as s:
        decisions = apply_batch(s, items, now=at(1))
    assert [d.to_state for d in decisions] == [State.FAILED] * size
    with Session(engine) as s:
        failed = s.exec(select(sa.func.count()).where(Link.state == "FAILED")).one()
        audited = s.exec(select(sa.func.count()).where(LinkEvent.to_state == "FAILED")).one()
        alerted = s.exec(select(sa.func.count()).select_from(Alert)).one()
    assert (failed, audited, alerted) == (size, size, size)
    # Lock, update, audit rows, alerts (and SQLite's BEGIN IMMEDIATE): whatever the size.
    expected = 4 + (engine.dialect.name == "sqlite")
    assert len(statements) == expected, statements


@pytest.mark.parametrize("race", ["an observation", "an unlink request"])
def test_a_link_whose_compare_and_set_loses_is_applied_again_alone(
    engine: sa.Engine, race: str
) -> None:
    with transaction(engine) as s:
        for num in (A, B):
            request_link_of(s, "telnyx", num, "C1", source=Source.API, now=at(0))
    items = [Item("telnyx", num, obs(Signal.LINKED, 10, status="ASSIGNED")) for num in (A, B)]
    with transaction(engine) as s:
        links = lock_links(s, [("telnyx", A), ("telnyx", B)])
        # A changes after the batch loaded it (what only a writer bypassing the lock could do).
        if race == "an observation":
            apply_observation(s, "telnyx", A, obs(Signal.PENDING, 5), now=at(5))
        else:
            request_unlink_of(s, "telnyx", A, source=Source.CLI, now=at(5))
        decisions = save_batch(s, links, items, now=at(10))
    with Session(engine) as s:
        a, b = (load(s, "telnyx", num, lock=False) for num in (A, B))
        assert a is not None and b is not None
        rows = s.exec(select(LinkEvent).where(LinkEvent.number == A).order_by(col(LinkEvent.id)))
        a_events = [(e.from_state, e.to_state) for e in rows]
    assert decisions[1].verdict is Verdict.APPLIED and b.state == "COMPLETED"
    if race == "an observation":
        # Decided again against the row as it is now: PROCESSING -> COMPLETED, not the plan's
        # LINK_REQUESTED -> COMPLETED.
        assert decisions[0].verdict is Verdict.APPLIED and a.state == "COMPLETED"
        assert a_events == [
            (None, "LINK_REQUESTED"),
            ("LINK_REQUESTED", "PROCESSING"),
            ("PROCESSING", "COMPLETED"),
        ]
    else:
        # The unlink started a new generation: the link callback no longer applies.
        assert decisions[0].verdict is Verdict.IGNORED
        assert (a.state, a.generation) == ("UNLINK_REQUESTED", 2)
        assert a_events == [(None, "LINK_REQUESTED"), ("LINK_REQUESTED", "UNLINK_REQUESTED")]


@pytest.mark.parametrize("path", ["batch", "single row"])
def test_a_dormant_failure_is_retried_once_and_alerts_only_the_second(
    engine: sa.Engine, path: str
) -> None:
    with transaction(engine) as s:
        request_link_of(s, "telnyx", A, "C1", source=Source.API, now=at(0))
    for t in (1, 11):  # the failure, then the retry's failure
        with transaction(engine) as s:
            if path == "batch":
                apply_batch(s, [Item("telnyx", A, dormant(t))], now=at(t + 9))
            else:
                apply_observation(s, "telnyx", A, dormant(t), now=at(t + 9))
        if t == 1:
            with Session(engine) as s:
                link = load(s, "telnyx", A, lock=False)
                assert link is not None
                assert (link.state, link.generation) == ("LINK_REQUESTED", 2)
                assert s.exec(select(Alert)).all() == []
    with Session(engine) as s:
        history = s.exec(
            select(LinkEvent.generation, LinkEvent.to_state, LinkEvent.source, LinkEvent.reason)
            .where(LinkEvent.number == A)
            .order_by(col(LinkEvent.id))
        ).all()
        alerts = s.exec(select(Alert)).all()
    assert [h[:3] for h in history] == [
        (1, "LINK_REQUESTED", "api"),
        (1, "FAILED", "webhook"),
        (2, "LINK_REQUESTED", "system"),
        (2, "FAILED", "webhook"),
    ]
    assert history[2][3] == RETRY_REASON
    assert [a.payload["state"] for a in alerts] == ["FAILED"]
