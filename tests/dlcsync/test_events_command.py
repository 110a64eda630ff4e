"""``dlcsync events`` and ``dlcsync events redeliver``."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlmodel import select

from models import events
from models.db import transaction
from models.links import request_link_of
from models.statemachine import Source
from models.tables import EventDelivery
from worker.events import url_key

URL1, URL2 = "http://one.test/e", "http://two.test/e?token=abc"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def with_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_WEBHOOK_URLS", f"{URL1} {URL2}")
    monkeypatch.setenv("EVENT_WEBHOOK_SECRET", "whsec_" + base64.b64encode(b"s" * 32).decode())


def _two_events(db: sa.Engine) -> None:
    with transaction(db) as s:
        request_link_of(s, "plivo", "+12025550101", "C1", source=Source.CLI, now=T0)
        request_link_of(s, "plivo", "+12025550102", "C1", source=Source.CLI, now=T0)
        events.fan_out(s, [url_key(URL1)], now=T0)


def test_lists_events_with_delivery_per_url(db, dlcsync, with_urls) -> None:
    _two_events(db)
    result = dlcsync("events", "--json")
    rows = json.loads(result.output)
    assert [r["number"] for r in rows] == ["+12025550102", "+12025550101"]
    assert rows[0]["deliveries"][0]["url"] == "url 1" and rows[0]["deliveries"][0]["state"] == (
        "pending"
    )
    table = dlcsync("events").output
    assert "url 1: pending" in table and "token=abc" not in table


def test_redeliver_to_one_url_then_all(db, dlcsync, with_urls) -> None:
    _two_events(db)
    out = dlcsync("events", "redeliver", "--since", "2026-03-01T00:00:00Z", "--url", URL2)
    assert out.exit_code == 0 and "2 deliveries scheduled" in out.output
    with transaction(db) as s:
        keys = sorted(d.url_key for d in s.exec(select(EventDelivery)).all())
    assert keys == sorted([url_key(URL1)] * 2 + [url_key(URL2)] * 2)
    assert "4 deliveries" in dlcsync("events", "redeliver", "--since", "2026-03-01").output


def test_redeliver_refuses_an_unknown_url_and_missing_config(db, dlcsync, with_urls) -> None:
    bad = dlcsync("events", "redeliver", "--since", "2026-03-01", "--url", "http://x.test")
    assert bad.exit_code == 2 and "one of EVENT_WEBHOOK_URLS" in bad.output


def test_a_bad_secret_is_a_one_line_error(dlcsync, monkeypatch) -> None:
    monkeypatch.setenv("EVENT_WEBHOOK_URLS", URL1)
    monkeypatch.setenv("EVENT_WEBHOOK_SECRET", "nope")
    result = dlcsync("events")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: configuration: EVENT_WEBHOOK_SECRET must start with 'whsec_' (Standard Webhooks)"
    ]
