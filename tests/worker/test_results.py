"""Recording a batch of provider answers: applied and rescheduled in a constant number of
statements, whatever the batch size."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from models.apply import Item, apply_batch
from models.batch import Entry, link_numbers
from models.db import transaction
from models.polling import Cadence, claim_due
from models.statemachine import Direction, Observation, Signal, Source
from models.tables import Link, LinkEvent
from providers.base import NumberStatus
from tests.statements import counting
from worker.results import Recorder, Stats

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("size", [1, 50, 500])
def test_a_polled_batch_costs_the_same_statements_at_any_size(engine: sa.Engine, size: int) -> None:
    numbers = [f"+1202557{i:04d}" for i in range(size)]
    pending = Observation(
        source=Source.WEBHOOK,
        provider_status="PROCESSING",
        observed_at=T0 + timedelta(seconds=1),
        signal=Signal.PENDING,
    )
    with transaction(engine) as s:
        link_numbers(s, "plivo", "C1", [Entry(n) for n in numbers], source=Source.API, now=T0)
        apply_batch(s, [Item("plivo", n, pending) for n in numbers], now=T0)
        claims = claim_due(s, now=T0, limit=size, everything=True)
    assert len(claims) == size and not any(c.requested for c in claims)
    now = T0 + timedelta(minutes=1)
    recorder = Recorder(engine, Cadence(drift_check=86400), random.Random(1), lambda: now)
    answers = [
        (c, NumberStatus(c.number, "C1", "COMPLETED", Signal.LINKED, Direction.LINK))
        for c in claims
    ]
    stats = Stats()
    with counting(engine) as statements:
        changed = recorder.record_many(answers, stats, Source.POLL)
    assert changed == [True] * size and (stats.polled, stats.applied) == (size, size)
    with Session(engine) as s:
        links = s.exec(select(Link)).all()
        completed = s.exec(select(sa.func.count()).where(LinkEvent.to_state == "COMPLETED")).one()
    assert completed == size and {link.state for link in links} == {"COMPLETED"}
    # Terminal: back for a drift check in a day (+-10 %), the poll backoff reset.
    for link in links:
        assert link.next_poll_at is not None and link.poll_attempts == 0
        assert timedelta(hours=21) < link.next_poll_at - now < timedelta(hours=27)
    # Lock, link update, audit rows, schedules (+ SQLite's BEGIN).
    assert len(statements) == 4 + (engine.dialect.name == "sqlite"), statements
