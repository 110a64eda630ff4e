"""The worker applies the callback the web view parsed (stored with the row), without parsing
the body again; rows stored before migration 0004 (no ``event``) are parsed from the body."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from models.db import transaction
from models.inbox import store_delivery
from models.links import request_link_of
from models.statemachine import Direction, Signal, Source, State
from models.tables import Link
from providers.base import CallbackEvent, CallbackRequest, Trust
from providers.delivery import event_record
from tests.worker.test_inbox_processing import FakeHandler
from worker.inbox import process_inbox

NUMBER = "+12025550777"


class CountingHandler(FakeHandler):
    def __init__(self) -> None:
        self.parsed = 0

    def parse(self, request: CallbackRequest) -> CallbackEvent:
        self.parsed += 1
        return super().parse(request)


def linked_event(key: str) -> CallbackEvent:
    return CallbackEvent(
        dedupe_key=key,
        relevant=True,
        number=NUMBER,
        campaign_id="C1",
        provider_status="ok",
        signal=Signal.LINKED,
        direction=Direction.LINK,
        provider_time=datetime.now(UTC) - timedelta(seconds=5),
    )


def requested(engine: sa.Engine) -> None:
    with transaction(engine) as s:
        request_link_of(
            s, "fake", NUMBER, "C1", source=Source.API, now=datetime.now(UTC) - timedelta(hours=1)
        )


def state(engine: sa.Engine) -> str:
    with Session(engine) as s:
        link = s.exec(sa.select(Link).where(Link.number == NUMBER)).scalar_one()
        return link.state


def test_a_row_with_its_parsed_event_is_applied_without_parsing(engine: sa.Engine) -> None:
    requested(engine)
    event = linked_event("k1")
    with transaction(engine) as s:
        # The body says nothing the fake parser understands: only the stored event can apply.
        inbox_id = store_delivery(
            s, "fake", "k1", b"not json", {}, event=event_record(event, Trust.BODY)
        ).id
    handler = CountingHandler()
    assert process_inbox(engine, {"fake": handler}, [inbox_id]) == {inbox_id: "applied"}
    assert handler.parsed == 0
    assert state(engine) == State.COMPLETED.value


def test_a_row_stored_before_0004_is_parsed_from_its_body(engine: sa.Engine) -> None:
    requested(engine)
    body = json.dumps({"id": "k2", "number": NUMBER}).encode()
    with transaction(engine) as s:
        inbox_id = store_delivery(s, "fake", "k2", body, {}).id
    handler = CountingHandler()
    assert process_inbox(engine, {"fake": handler}, [inbox_id]) == {inbox_id: "applied"}
    assert handler.parsed == 1
    assert state(engine) == State.COMPLETED.value


def test_a_hint_row_applies_nothing(engine: sa.Engine) -> None:
    requested(engine)
    event = linked_event("k3")
    with transaction(engine) as s:
        inbox_id = store_delivery(
            s, "fake", "k3", b"", {}, event=event_record(event, Trust.SENDER)
        ).id
    assert process_inbox(engine, {"fake": CountingHandler()}, [inbox_id]) == {inbox_id: "ignored"}
    assert state(engine) == State.LINK_REQUESTED.value
