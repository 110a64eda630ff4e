"""``/metrics`` for outbound events: delivery counter by result, oldest undelivered age."""

from __future__ import annotations

import base64
from datetime import timedelta

import httpx
import time_machine
from flask import Flask

from models.tables import utcnow
from tests.webhooks.web.conftest import app_engine, samples, seed, value
from worker.events import deliver_events

SECRET = "whsec_" + base64.b64encode(b"m" * 32).decode()
URL = "http://receiver.test/events"


def test_event_age_and_delivery_counter(web_app: Flask) -> None:
    engine = app_engine(web_app)
    seeded_at = utcnow()
    seed(engine, now=seeded_at)
    client = web_app.test_client()
    with time_machine.travel(seeded_at + timedelta(minutes=10)):
        before = samples(client.get("/metrics").get_data(as_text=True))
        assert value(before, "dlcsync_oldest_undelivered_event_age_seconds") >= 600 - 5
        answers = iter([503] + [200] * 10_000)
        transport = httpx.MockTransport(lambda r: httpx.Response(next(answers)))
        stats = deliver_events(engine, [URL], SECRET, client=httpx.Client(transport=transport))
        after = samples(client.get("/metrics").get_data(as_text=True))
    delivered = stats.results["delivered"]
    assert delivered > 10 and stats.results["retry"] == 1
    got = value(after, "dlcsync_event_deliveries_total", result="delivered") - value(
        before, "dlcsync_event_deliveries_total", result="delivered"
    )
    assert got == delivered
    # One event (and the later events of its number) still waits for its retry.
    assert value(after, "dlcsync_oldest_undelivered_event_age_seconds") >= 600 - 5
