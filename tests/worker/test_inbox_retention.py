"""Inbox retention (issue 12 §3): processed rows past ``INBOX_RETENTION_DAYS`` go, in bounded
batches; unprocessed rows and the rows audit rows cite stay; within the window a redelivery is
still a duplicate."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
import time_machine
from sqlmodel import Session, select

from common.settings import Settings
from models.db import transaction
from models.inbox import remember_nonce, store_delivery
from models.links import request_link_of
from models.statemachine import Source
from models.tables import CallbackNonce, InboxItem, LinkEvent
from tests.worker.test_inbox_processing import FakeHandler
from worker.celery_app import BEAT_SCHEDULE_SECONDS, PURGE_INBOX
from worker.inbox import process_inbox, purge_inbox

RETENTION = timedelta(days=30)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def deliver(engine: sa.Engine, key: str, body: dict[str, str]) -> tuple[int, bool]:
    with transaction(engine) as s:
        stored = store_delivery(s, "fake", key, json.dumps(body).encode(), {})
    return stored.id, stored.new


def ids_left(engine: sa.Engine) -> set[int]:
    with Session(engine) as s:
        return {i for i in s.exec(select(InboxItem.id)).all() if i is not None}


def test_purge_keeps_unprocessed_recent_and_cited_rows(engine: sa.Engine) -> None:
    handlers = {"fake": FakeHandler()}
    with time_machine.travel(T0, tick=False):
        with transaction(engine) as s:
            request_link_of(
                s, "fake", "+12025550901", "C1", source=Source.API, now=T0 - timedelta(hours=1)
            )
        cited, _ = deliver(engine, "cited", {"id": "cited", "number": "+12025550901"})
        ignored, _ = deliver(engine, "old", {"id": "old", "kind": "campaign"})
        waiting, _ = deliver(engine, "waiting", {"id": "waiting", "kind": "campaign"})
        assert process_inbox(engine, handlers, [cited, ignored]) == {
            cited: "applied",
            ignored: "ignored",
        }
        with transaction(engine) as s:
            assert remember_nonce(s, "fake", "old-nonce", "d1")
    with time_machine.travel(T0 + RETENTION - timedelta(days=1), tick=False):
        recent, _ = deliver(engine, "recent", {"id": "recent", "kind": "campaign"})
        process_inbox(engine, handlers, [recent])
        with transaction(engine) as s:
            assert remember_nonce(s, "fake", "new-nonce", "d2")

    with time_machine.travel(T0 + RETENTION + timedelta(hours=1), tick=False):
        assert purge_inbox(engine, older_than=RETENTION) == 1

    assert ids_left(engine) == {cited, waiting, recent}
    with Session(engine) as s:
        assert s.exec(select(LinkEvent.inbox_id).where(LinkEvent.inbox_id == cited)).all()
        assert [n.nonce for n in s.exec(select(CallbackNonce)).all()] == ["new-nonce"]


def test_a_redelivery_within_the_window_is_a_duplicate_and_after_it_is_new(
    engine: sa.Engine,
) -> None:
    handlers = {"fake": FakeHandler()}
    with time_machine.travel(T0, tick=False):
        first, new = deliver(engine, "evt", {"id": "evt", "kind": "campaign"})
        assert new
        process_inbox(engine, handlers, [first])
    with time_machine.travel(T0 + RETENTION - timedelta(minutes=1), tick=False):
        purge_inbox(engine, older_than=RETENTION)
        assert deliver(engine, "evt", {"id": "evt", "kind": "campaign"}) == (first, False)
    with time_machine.travel(T0 + RETENTION + timedelta(minutes=1), tick=False):
        assert purge_inbox(engine, older_than=RETENTION) == 1
        _, new = deliver(engine, "evt", {"id": "evt", "kind": "campaign"})
        assert new  # past the window the event is stored (and applied) again


def test_purge_works_in_bounded_batches(engine: sa.Engine) -> None:
    handlers = {"fake": FakeHandler()}
    with time_machine.travel(T0, tick=False):
        ids = [deliver(engine, f"k{i}", {"id": f"k{i}", "kind": "campaign"})[0] for i in range(7)]
        process_inbox(engine, handlers, ids)
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("DELETE FROM INBOX"):
            statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        with time_machine.travel(T0 + RETENTION * 2, tick=False):
            # Two batches of 3 this run (the limit); the next run takes the rest.
            assert purge_inbox(engine, older_than=RETENTION, batch=3, max_batches=2) == 6
            assert len(ids_left(engine)) == 1
            assert purge_inbox(engine, older_than=RETENTION, batch=3, max_batches=2) == 1
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 3
    assert ids_left(engine) == set()


def test_retention_setting_and_beat_entry() -> None:
    """The beat table runs the purge (tests/test_wiring.py checks it is a registered task)."""
    assert Settings(_env_file=None).inbox_retention_days == 30  # type: ignore[call-arg]
    settings = Settings(_env_file=None, inbox_retention_days=7)  # type: ignore[call-arg]
    assert settings.inbox_retention_days == 7
    assert PURGE_INBOX in BEAT_SCHEDULE_SECONDS
