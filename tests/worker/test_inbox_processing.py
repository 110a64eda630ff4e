"""Inbox processing: one outcome per row, poison rows stop, the sweeper re-enqueues."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from models.batch import Entry, link_numbers
from models.db import transaction
from models.inbox import MAX_ATTEMPTS, store_delivery
from models.links import request_link_of
from models.statemachine import Direction, Signal, Source
from models.tables import Alert, InboxItem, Link, LinkEvent
from providers.base import CallbackEvent, CallbackHandler, CallbackParseError, CallbackRequest
from tests.statements import counting
from worker.inbox import process_inbox, sweep_inbox


class FakeHandler(CallbackHandler):
    """Parses a tiny JSON format; a body of b"boom" makes parsing explode."""

    name = "fake"

    def verify(self, request: CallbackRequest, now: float | None = None) -> None:
        return None

    def parse(self, request: CallbackRequest) -> CallbackEvent:
        if request.body == b"boom":
            raise RuntimeError("database of the mind is on fire")
        data = json.loads(request.body)
        if data.get("kind") == "campaign":
            return CallbackEvent(dedupe_key=data["id"], relevant=False, ignore_reason="campaign")
        if "number" not in data:
            raise CallbackParseError("no number")
        return CallbackEvent(
            dedupe_key=data["id"],
            relevant=True,
            number=data["number"],
            campaign_id="C1",
            provider_status="ok",
            signal=Signal.LINKED,
            direction=Direction.LINK,
        )


def store(engine: sa.Engine, body: bytes, key: str) -> int:
    with transaction(engine) as s:
        return store_delivery(s, "fake", key, body, {"content-type": "application/json"}).id


def test_each_row_gets_exactly_one_outcome(engine: sa.Engine) -> None:
    with transaction(engine) as s:
        request_link_of(s, "fake", "+12025550801", "C1", source=Source.API)
    ids = [
        store(engine, json.dumps({"id": "a", "number": "+12025550801"}).encode(), "a"),
        store(engine, json.dumps({"id": "b", "number": "+12025550801"}).encode(), "b"),
        store(engine, json.dumps({"id": "c", "kind": "campaign"}).encode(), "c"),
        store(engine, json.dumps({"id": "d", "number": "+12025559999"}).encode(), "d"),
    ]
    handlers = {"fake": FakeHandler()}
    assert process_inbox(engine, handlers, ids) == {
        ids[0]: "applied",
        ids[1]: "duplicate",
        ids[2]: "ignored",
        ids[3]: "ignored",
    }
    # A redelivered task finds every row done and changes nothing.
    assert process_inbox(engine, handlers, ids) == {}
    with Session(engine) as s:
        rows = s.exec(select(InboxItem).order_by(InboxItem.id)).all()
        assert [r.attempts for r in rows] == [1, 1, 1, 1]
        assert rows[3].reason == "number is not managed by dlcsync"


def test_a_poison_row_fails_after_bounded_attempts_and_alerts(engine: sa.Engine) -> None:
    bad = store(engine, b"boom", "bad")
    good = store(engine, json.dumps({"id": "g", "kind": "campaign"}).encode(), "g")
    handlers = {"fake": FakeHandler()}
    for attempt in range(1, MAX_ATTEMPTS + 1):
        outcomes = process_inbox(engine, handlers, [bad, good])
        assert outcomes.get(bad) == ("failed" if attempt == MAX_ATTEMPTS else None)
    assert process_inbox(engine, handlers, [bad]) == {}  # never loops forever
    with Session(engine) as s:
        row = s.get(InboxItem, bad)
        assert row is not None and row.outcome == "failed" and row.attempts == MAX_ATTEMPTS
        assert row.error and "on fire" in row.error
        assert s.get(InboxItem, good).outcome == "ignored"  # type: ignore[union-attr]
        assert [a.kind for a in s.exec(select(Alert)).all()] == ["delivery_failed"]


def test_sweeper_enqueues_only_old_unprocessed_rows(engine: sa.Engine) -> None:
    old = store(engine, b"{}", "old")
    with transaction(engine) as s:  # make it older than the grace period
        s.execute(
            sa.update(InboxItem)
            .where(InboxItem.id == old)  # type: ignore[arg-type]
            .values(received_at=datetime.now(UTC) - timedelta(minutes=5))
        )
    store(engine, b"{}", "new")
    batches: list[list[int]] = []
    assert sweep_inbox(engine, batches.append, grace=timedelta(seconds=30)) == 1
    assert batches == [[old]]


def test_duplicate_delivery_stores_nothing_new(engine: sa.Engine) -> None:
    first = store(engine, b'{"id": "x"}', "x")
    second = store(engine, b'{"id": "x"}', "x")
    assert first == second
    with Session(engine) as s:
        (row,) = s.exec(select(InboxItem)).all()
        assert row.duplicate_deliveries == 1


@pytest.mark.parametrize("size", [1, 50, 500])
def test_statements_per_batch_do_not_grow_with_its_size(engine: sa.Engine, size: int) -> None:
    numbers = [f"+1202556{i:04d}" for i in range(size)]
    with transaction(engine) as s:
        link_numbers(s, "fake", "C1", [Entry(n) for n in numbers], source=Source.API)
        ids = [
            store_delivery(s, "fake", n, json.dumps({"id": n, "number": n}).encode(), {}).id
            for n in numbers
        ]
    with counting(engine) as statements:
        outcomes = process_inbox(engine, {"fake": FakeHandler()}, ids)
    assert outcomes == dict.fromkeys(ids, "applied")
    with Session(engine) as s:
        assert s.exec(select(sa.func.count()).where(Link.state == "COMPLETED")).one() == size
        assert s.exec(select(sa.func.count()).where(LinkEvent.inbox_id.in_(ids))).one() == size  # type: ignore[union-attr]
        assert all(link.next_poll_at is not None for link in s.exec(select(Link)).all())
    # Inbox rows, links, link update (due now too), audit rows, outcomes (+ SQLite's BEGIN).
    assert len(statements) == 5 + (engine.dialect.name == "sqlite"), statements


def test_every_callback_makes_its_link_due_now_whatever_the_verdict(engine: sa.Engine) -> None:
    """A callback is a hint: applied or a duplicate, its number is polled now, backoff reset."""
    applied, duplicate = "+12025550811", "+12025550812"
    with transaction(engine) as s:
        for number in (applied, duplicate):
            request_link_of(s, "fake", number, "C1", source=Source.API)
    first = store(engine, json.dumps({"id": "x", "number": duplicate}).encode(), "x")
    assert process_inbox(engine, {"fake": FakeHandler()}, [first]) == {first: "applied"}
    later = datetime.now(UTC) + timedelta(days=3)
    with transaction(engine) as s:
        s.execute(sa.update(Link).values(next_poll_at=later, poll_attempts=4))
    ids = [
        store(engine, json.dumps({"id": "y", "number": applied}).encode(), "y"),
        store(engine, json.dumps({"id": "z", "number": duplicate}).encode(), "z"),
    ]
    before = datetime.now(UTC)
    outcomes = process_inbox(engine, {"fake": FakeHandler()}, ids)
    assert outcomes == {ids[0]: "applied", ids[1]: "duplicate"}
    with Session(engine) as s:
        for link in s.exec(select(Link)).all():
            assert link.next_poll_at is not None and before <= link.next_poll_at < later
            assert link.poll_attempts == 0


class DormantHandler(FakeHandler):
    """Every delivery is Telnyx failing a dormant campaign's first assignment."""

    def parse(self, request: CallbackRequest) -> CallbackEvent:
        data = json.loads(request.body)
        return CallbackEvent(
            dedupe_key=data["id"],
            relevant=True,
            number=data["number"],
            campaign_id="C1",
            provider_status="failed",
            signal=Signal.FAILED,
            direction=Direction.LINK,
            reason="campaign was dormant",
            retry_once=True,
        )


def test_a_dormant_failure_callback_starts_the_retry(engine: sa.Engine) -> None:
    number = "+12025550851"
    with transaction(engine) as s:
        request_link_of(s, "fake", number, "C1", source=Source.API)
    ids = [store(engine, json.dumps({"id": "d1", "number": number}).encode(), "d1")]
    assert process_inbox(engine, {"fake": DormantHandler()}, ids) == {ids[0]: "applied"}
    with Session(engine) as s:
        link = s.exec(select(Link).where(Link.number == number)).one()
        assert (link.state, link.generation) == ("LINK_REQUESTED", 2)
        assert s.exec(select(Alert)).all() == []
