"""Event delivery over HTTP (MockTransport): signatures verify, retries are identical, a dead
URL does not hold up a live one, 4xx other than 408/409/429 stops retries."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
import time_machine
from sqlmodel import select
from standardwebhooks.webhooks import Webhook

from models import events
from models.db import transaction
from models.links import apply_observation, request_link_of
from models.statemachine import Observation, Signal, Source
from models.tables import EventDelivery, LinkEvent
from worker.events import deliver_events, url_key

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LIVE, DEAD = "http://live.test/hook", "http://dead.test/hook"


def _link(engine: sa.Engine, number: str) -> None:
    with transaction(engine) as s:
        request_link_of(s, "telnyx", number, "C1", source=Source.API, now=T0)
    for i, signal in enumerate((Signal.PENDING, Signal.LINKED), start=1):
        with transaction(engine) as s:
            at = T0 + timedelta(seconds=i)
            apply_observation(
                s, "telnyx", number, Observation(Source.WEBHOOK, str(signal), at, signal), now=at
            )


class Receiver:
    """Verifies every request with standardwebhooks; answers from a script."""

    def __init__(self, answers: dict[str, list[int]] | None = None) -> None:
        self.answers = answers or {}
        self.seen: list[tuple[str, str, bytes]] = []  # (url, webhook-id, body)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if url == DEAD:
            raise httpx.ConnectError("connection refused", request=request)
        Webhook(SECRET).verify(request.content, dict(request.headers))
        self.seen.append((url, request.headers["webhook-id"], request.content))
        script = self.answers.get(url)
        status = script.pop(0) if script else 200
        headers = {"retry-after": "1"} if status == 429 else {}
        return httpx.Response(status, headers=headers)


def _client(receiver: Receiver) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(receiver))


def test_events_are_signed_in_order_and_identical_on_retry(engine: sa.Engine) -> None:
    _link(engine, "+12025550101")
    receiver = Receiver({LIVE: [503, 200, 429, 200, 200]})
    with time_machine.travel(T0 + timedelta(minutes=1)) as traveller:
        for _ in range(8):  # the receiver checks webhook-timestamp against this clock
            deliver_events(engine, [LIVE], SECRET, client=_client(receiver))
            traveller.shift(timedelta(hours=1))
    ids = [wid for _, wid, _ in receiver.seen]
    assert ids == ["evt_1", "evt_1", "evt_2", "evt_2", "evt_3"]  # in order, retried first
    assert receiver.seen[0][2] == receiver.seen[1][2]  # byte-identical body on retry
    bodies = [json.loads(b) for _, _, b in receiver.seen[1::2] + receiver.seen[-1:]]
    assert [b["data"]["to_state"] for b in bodies[:3]] == [
        "LINK_REQUESTED",
        "PROCESSING",
        "COMPLETED",
    ]
    with transaction(engine) as s:
        states = {d.state for d in s.exec(select(EventDelivery)).all()}
    assert states == {events.DELIVERED}


def test_a_dead_url_does_not_hold_up_a_live_one(engine: sa.Engine) -> None:
    _link(engine, "+12025550101")
    receiver = Receiver()
    with time_machine.travel(T0):
        stats = deliver_events(engine, [DEAD, LIVE], SECRET, client=_client(receiver))
    assert [wid for url, wid, _ in receiver.seen if url == LIVE] == ["evt_1", "evt_2", "evt_3"]
    assert stats.results.get("delivered") == 3
    with transaction(engine) as s:
        dead = s.exec(select(EventDelivery).where(EventDelivery.url_key == url_key(DEAD))).all()
    # The dead URL was tried once; its first event waits for a retry, the rest untouched.
    assert sorted((d.event_id, d.state, d.attempts) for d in dead) == [
        (1, events.PENDING, 1),
        (2, events.PENDING, 0),
        (3, events.PENDING, 0),
    ]
    assert "ConnectError" in (dead[0].last_error or "")


def test_a_permanent_4xx_stops_that_event_and_the_next_goes(engine: sa.Engine) -> None:
    _link(engine, "+12025550101")
    receiver = Receiver({LIVE: [410]})
    with time_machine.travel(T0):
        deliver_events(engine, [LIVE], SECRET, client=_client(receiver))
    with transaction(engine) as s:
        rows = {d.event_id: d for d in s.exec(select(EventDelivery)).all()}
    assert rows[1].state == events.REJECTED and rows[1].last_status == 410
    assert rows[2].state == rows[3].state == events.DELIVERED
    assert len(receiver.seen) == 3


def test_no_urls_sends_nothing_and_keeps_no_backlog(engine: sa.Engine) -> None:
    _link(engine, "+12025550101")
    stats = deliver_events(engine, [], None, now=lambda: T0)
    assert stats.fanned_out == 3
    with transaction(engine) as s:
        assert events.oldest_undelivered(s) is None
        assert len(s.exec(select(LinkEvent)).all()) == 3


@pytest.mark.parametrize("secret", [None, "", "abc", "whsec_not base64!", "whsec_" + "QQ=="])
def test_event_urls_need_a_valid_secret(secret: str | None, monkeypatch) -> None:
    from pydantic import ValidationError

    from common.settings import Settings

    monkeypatch.setenv("EVENT_WEBHOOK_URLS", LIVE)
    if secret is None:
        monkeypatch.delenv("EVENT_WEBHOOK_SECRET", raising=False)
    else:
        monkeypatch.setenv("EVENT_WEBHOOK_SECRET", secret)
    with pytest.raises(ValidationError, match="EVENT_WEBHOOK_SECRET"):
        Settings(_env_file=None)
    monkeypatch.setenv("EVENT_WEBHOOK_SECRET", SECRET)
    assert Settings(_env_file=None).event_webhook_url_list == [LIVE]
