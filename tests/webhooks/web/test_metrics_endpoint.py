"""``GET /metrics``: valid exposition format; counters match what the test did; the gauges
match the database."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import pytest
import respx
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, col, select

from common.settings import Settings
from models.statemachine import State
from models.tables import Alert, InboxItem, Link
from providers.base import TemporaryProviderError
from providers.http import endpoint_name
from providers.plivo import PlivoClient, make_plivo_http
from providers.registry import build_callback_handlers
from tests.webhooks.web.conftest import (
    TELNYX_PUBLIC,
    app_engine,
    make_web_app,
    samples,
    seed,
    sign_telnyx,
    telnyx_callback,
    value,
)
from worker.inbox import process_inbox

PLIVO_API = "https://plivo.test"
AUTH_ID = "MAXXXXXXXXXXXXXXXXXX"


def scrape(client: FlaskClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.content_type.startswith("text/plain")
    return samples(r.get_data(as_text=True))


def delta(before: dict, after: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return value(after, name, **labels) - value(before, name, **labels)


def test_webhook_inbox_and_provider_counters_match_what_happened(web_app: Flask) -> None:
    engine = app_engine(web_app)
    seeded = seed(engine)
    client = web_app.test_client()
    before = scrape(client)

    # 4 accepted, 1 duplicate, 3 unauthorized, 1 malformed, 1 too large.
    processing = _numbers_in(engine, "TCAMP-B")
    for i, number in enumerate([*processing, processing[0]]):
        body = telnyx_callback(number, "TCAMP-B", "success", f"evt-{i % len(processing)}")
        r = client.post("/webhooks/telnyx", data=body, headers=sign_telnyx(body))
        assert r.status_code == 200
    extra = telnyx_callback(seeded.stuck[0], "TCAMP-A", "success", "evt-extra")
    assert (
        client.post("/webhooks/telnyx", data=extra, headers=sign_telnyx(extra)).status_code == 200
    )
    for _ in range(3):
        r = client.post(
            "/webhooks/telnyx", data=extra, headers={"content-type": "application/json"}
        )
        assert r.status_code == 401
    assert (
        client.post("/webhooks/telnyx", data=b"nope", headers=sign_telnyx(b"nope")).status_code
        == 400
    )
    big = b"x" * (300 * 1024)
    assert client.post("/webhooks/telnyx", data=big, headers=sign_telnyx(big)).status_code == 413
    assert client.post("/webhooks/plivo", data=b"a=b").status_code == 401

    mid = scrape(client)
    assert (
        delta(
            before, mid, "dlcsync_webhook_deliveries_total", provider="telnyx", outcome="accepted"
        )
        == 4
    )
    assert (
        delta(
            before, mid, "dlcsync_webhook_deliveries_total", provider="telnyx", outcome="duplicate"
        )
        == 1
    )
    assert (
        delta(
            before,
            mid,
            "dlcsync_webhook_deliveries_total",
            provider="telnyx",
            outcome="unauthorized",
        )
        == 3
    )
    assert (
        delta(
            before, mid, "dlcsync_webhook_deliveries_total", provider="telnyx", outcome="malformed"
        )
        == 1
    )
    assert (
        delta(
            before, mid, "dlcsync_webhook_deliveries_total", provider="telnyx", outcome="too_large"
        )
        == 1
    )
    assert (
        delta(
            before,
            mid,
            "dlcsync_webhook_deliveries_total",
            provider="plivo",
            outcome="unauthorized",
        )
        == 1
    )
    assert value(mid, "dlcsync_inbox_backlog", provider="telnyx") == 4

    # The worker applies them: 4 inbox outcomes, all applied (3 moves to COMPLETED, 1 stuck
    # number completed).
    with Session(engine) as s:
        ids = list(s.exec(select(InboxItem.id).where(col(InboxItem.outcome).is_(None))).all())
    settings = Settings(telnyx_public_key=TELNYX_PUBLIC)
    outcomes = process_inbox(engine, build_callback_handlers(settings), [i for i in ids if i])
    assert Counter(outcomes.values()) == {"applied": 4}

    after = scrape(client)
    assert (
        delta(mid, after, "dlcsync_inbox_outcomes_total", provider="telnyx", outcome="applied") == 4
    )
    assert value(after, "dlcsync_inbox_backlog", provider="telnyx") == 0
    _assert_gauges_match_database(engine, after)


def test_provider_requests_are_counted_by_endpoint_and_result(web_app: Flask) -> None:
    client = web_app.test_client()
    before = scrape(client)
    number, campaign = "+12025550100", "CMPTAB1"
    get_url = f"/v1/Account/{AUTH_ID}/10dlc/Campaign/{campaign}/Number/12025550100/"
    body = {"api_id": "x", "campaign_id": campaign, "phone_numbers": [
        {"number": "12025550100", "status": "COMPLETED"}]}  # fmt: skip
    with respx.mock(base_url=PLIVO_API, assert_all_called=True) as mock:
        mock.get(get_url).mock(
            side_effect=[
                httpx.Response(200, json=body),
                httpx.Response(200, json=body),
                httpx.Response(429, json={"error": "slow down"}),
                httpx.Response(503, text="busy"),
                httpx.ReadTimeout("too slow"),
            ]
        )
        plivo = PlivoClient(
            make_plivo_http(PLIVO_API, AUTH_ID, "tok"), AUTH_ID, "https://me/webhooks/plivo"
        )
        for _ in range(5):
            try:
                plivo.get(campaign, number)
            except TemporaryProviderError:
                pass
            except Exception as exc:  # a 2xx the adapter rejects still counts as a request
                assert not isinstance(exc, httpx.HTTPError)
    after = scrape(client)
    endpoint = "GET /v1/Account/{id}/10dlc/Campaign/{id}/Number/{id}/"
    assert endpoint_name("GET", get_url) == endpoint
    for result, count in (("2xx", 2), ("429", 1), ("5xx", 1), ("timeout", 1)):
        got = delta(before, after, "dlcsync_provider_requests_total",
                    provider="plivo", endpoint=endpoint, result=result)  # fmt: skip
        assert got == count, result
    latency = delta(before, after, "dlcsync_provider_request_seconds_count",
                    provider="plivo", endpoint=endpoint)  # fmt: skip
    assert latency == 5
    text = client.get("/metrics").get_data(as_text=True)
    assert "12025550100" not in text  # no number ever becomes a label


def test_gauges_cover_every_state_and_answer_when_the_database_is_down(
    web_app: Flask, tmp_path: Path
) -> None:
    engine = app_engine(web_app)
    seed(engine)
    page = scrape(web_app.test_client())
    assert value(page, "dlcsync_database_up") == 1
    for provider in ("plivo", "telnyx"):
        for state in State:
            assert (("dlcsync_links", frozenset({("provider", provider), ("state", state.value)}))
                    in page)  # fmt: skip
    _assert_gauges_match_database(engine, page)
    assert value(page, "dlcsync_oldest_pending_link_age_seconds", provider="plivo") > 3 * 3600 - 60

    down = make_web_app(f"sqlite:///{tmp_path}/missing/dir/x.db")
    try:
        r = down.test_client().get("/metrics")
        assert r.status_code == 200
        page = samples(r.get_data(as_text=True))
        assert value(page, "dlcsync_database_up") == 0
        assert not any(name == "dlcsync_links" for name, _ in page)
    finally:
        down.extensions["dlcsync"].engine.dispose()


def test_metrics_needs_no_login(web_app: Flask) -> None:
    r = web_app.test_client().get("/metrics")
    assert r.status_code == 200
    assert b"dlcsync_webhook_deliveries_total" in r.data or b"dlcsync_database_up" in r.data


def _numbers_in(engine: sa.Engine, campaign: str) -> list[str]:
    with Session(engine) as s:
        return list(s.exec(select(Link.number).where(Link.campaign_id == campaign)).all())


def _assert_gauges_match_database(engine: sa.Engine, page: dict) -> None:  # type: ignore[type-arg]
    with Session(engine) as s:
        links = Counter((link.provider, link.state) for link in s.exec(select(Link)).all())
        alerts = Counter(a.state for a in s.exec(select(Alert)).all())
    for (provider, state), count in links.items():
        assert value(page, "dlcsync_links", provider=provider, state=state) == count
    listed = sum(v for (name, _), v in page.items() if name == "dlcsync_links")
    assert listed == sum(links.values())
    for state, count in alerts.items():
        assert value(page, "dlcsync_alerts", state=state) == count
    assert sum(v for (name, _), v in page.items() if name == "dlcsync_alerts") == sum(
        alerts.values()
    )


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
