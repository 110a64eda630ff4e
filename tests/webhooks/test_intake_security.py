"""Hostile deliveries at ``/webhooks/*`` (issue 12 §2): forged Plivo bodies, replayed nonces,
long chunked bodies, text no database can store. Each goes through the real app and, where it
is accepted, the real worker function, on both databases (NUL: PostgreSQL, which refuses it)."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, select

from common.settings import Settings
from models.db import transaction
from models.links import apply_observation, request_link_of
from models.statemachine import Observation, Signal, Source, State
from models.tables import Alert, InboxItem, Link
from providers.plivo import compute_signature_v2, compute_signature_v3
from webhooks.app import create_app
from webhooks.services import MAX_BODY_BYTES
from worker.inbox import process_inbox

TOKEN = "plivo-secret-token"
PUBLIC_URL = "https://dlcsync.example.com"
PLIVO_URL = f"{PUBLIC_URL}/webhooks/plivo"
NUMBER = "+12025550150"
CAMPAIGN = "CMPGN01"
TELNYX_KEY = Ed25519PrivateKey.from_private_bytes(b"\x05" * 32)
TELNYX_PUBLIC = base64.b64encode(TELNYX_KEY.public_key().public_bytes_raw()).decode()
API_TOKEN = "t" * 40


def make_app(database_url: str) -> Flask:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        public_url=PUBLIC_URL,
        plivo_auth_id="MAINTAKE000000000000",
        plivo_auth_token=TOKEN,
        telnyx_api_key="KEY-intake",
        telnyx_public_key=TELNYX_PUBLIC,
        api_token=API_TOKEN,
    )
    return create_app(settings, enqueue=lambda *a: None, broker_ping=lambda: None)


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    app = make_app(db_url)
    yield app
    app.extensions["dlcsync"].engine.dispose()


@pytest.fixture
def engine(app: Flask) -> sa.Engine:
    engine: sa.Engine = app.extensions["dlcsync"].engine
    return engine


def processing_link(engine: sa.Engine) -> None:
    """A number whose link the provider accepted: PROCESSING."""
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    with transaction(engine) as s:
        request_link_of(s, "plivo", NUMBER, CAMPAIGN, source=Source.API, now=t0)
        apply_observation(
            s,
            "plivo",
            NUMBER,
            Observation(
                source=Source.POLL,
                provider_status="PROCESSING",
                observed_at=t0 + timedelta(seconds=1),
                signal=Signal.PENDING,
                campaign_id=CAMPAIGN,
                generation=1,
            ),
        )
        s.execute(sa.update(Link).values(next_poll_at=t0 + timedelta(hours=1), poll_attempts=4))


def plivo_form(status: str, **extra: str) -> bytes:
    fields = {
        "campaign_id": CAMPAIGN,
        "number": NUMBER[1:],
        "event": "number_linking",
        "status": status,
    }
    return urlencode({**fields, **extra}).encode()


def v2_headers(nonce: str) -> dict[str, str]:
    return {
        "X-Plivo-Signature-V2": compute_signature_v2(TOKEN, PLIVO_URL, nonce),
        "X-Plivo-Signature-V2-Nonce": nonce,
    }


def v3_headers(body: bytes, nonce: str) -> dict[str, str]:
    params = dict(parse_qsl(body.decode()))
    return {
        "X-Plivo-Signature-V3": compute_signature_v3(TOKEN, "POST", PLIVO_URL, params, nonce),
        "X-Plivo-Signature-V3-Nonce": nonce,
    }


FORM = "application/x-www-form-urlencoded"


def post_plivo(client: FlaskClient, body: bytes, headers: dict[str, str]) -> Any:
    return client.post("/webhooks/plivo", data=body, headers={**headers, "Content-Type": FORM})


def run_worker(app: Flask, inbox_id: int) -> dict[int, str]:
    svc = app.extensions["dlcsync"]
    return process_inbox(svc.engine, svc.handlers, [inbox_id])


def link_row(engine: sa.Engine) -> Link:
    with Session(engine) as s:
        link = s.exec(select(Link).where(Link.number == NUMBER)).one()
        s.expunge(link)
        return link


# --- forged Plivo bodies --------------------------------------------------------------------


def test_v2_only_callback_with_a_forged_body_moves_nothing_and_polls(app: Flask) -> None:
    """Issue 12 §2, the attack: a V2 header pair (it signs URL and nonce only) and a body of
    the attacker's choosing. Answered 200, recorded as ignored, the number is polled now."""
    engine = app.extensions["dlcsync"].engine
    processing_link(engine)
    forged = plivo_form("failed", reason="attacker says so")
    response = post_plivo(app.test_client(), forged, v2_headers("fresh-nonce-1"))
    assert response.status_code == 200, response.json
    before = datetime.now(UTC)

    assert run_worker(app, response.json["inbox_id"]) == {response.json["inbox_id"]: "ignored"}
    link = link_row(engine)
    assert link.state == State.PROCESSING.value
    assert link.failure_reason is None
    assert link.next_poll_at is not None and link.next_poll_at <= before + timedelta(seconds=1)
    assert link.poll_attempts == 0
    with Session(engine) as s:
        assert s.exec(select(Alert)).all() == []
        row = s.get(InboxItem, response.json["inbox_id"])
        assert row is not None and row.reason and "does not cover the body" in row.reason


def test_v3_signed_body_is_applied(app: Flask) -> None:
    engine = app.extensions["dlcsync"].engine
    processing_link(engine)
    body = plivo_form("success")
    response = post_plivo(app.test_client(), body, v3_headers(body, "v3-nonce-1"))
    assert response.status_code == 200, response.json
    assert run_worker(app, response.json["inbox_id"]) == {response.json["inbox_id"]: "applied"}
    assert link_row(engine).state == State.COMPLETED.value


def test_wrong_v3_is_refused_even_beside_a_valid_v2(app: Flask) -> None:
    body = plivo_form("failed", reason="attacker")
    headers = {
        **v2_headers("n-2"),
        "X-Plivo-Signature-V3": compute_signature_v3(TOKEN, "POST", PLIVO_URL, {}, "n-2") + "x",
        "X-Plivo-Signature-V3-Nonce": "n-2",
    }
    response = post_plivo(app.test_client(), body, headers)
    assert response.status_code == 401
    with Session(app.extensions["dlcsync"].engine) as s:
        assert s.exec(select(InboxItem)).all() == []


def test_nonce_replayed_with_another_body_is_refused(app: Flask) -> None:
    """A V2 pair seen once (from a log, a proxy) cannot carry another body, not even as a hint."""
    client = app.test_client()
    genuine = plivo_form("success")
    first = post_plivo(client, genuine, v2_headers("seen-nonce"))
    assert first.status_code == 200
    again = post_plivo(client, genuine, v2_headers("seen-nonce"))  # the provider's retry
    assert again.status_code == 200 and again.json["duplicate"] is True
    forged = post_plivo(client, plivo_form("failed", reason="x"), v2_headers("seen-nonce"))
    assert forged.status_code == 401
    assert forged.json["error"]["code"] == "replayed_nonce"
    with Session(app.extensions["dlcsync"].engine) as s:
        assert len(s.exec(select(InboxItem)).all()) == 1


def test_signature_headers_are_not_stored_in_clear(app: Flask) -> None:
    body = plivo_form("success")
    headers = {**v3_headers(body, "n-3"), **v2_headers("n-3")}
    response = post_plivo(app.test_client(), body, headers)
    assert response.status_code == 200
    with Session(app.extensions["dlcsync"].engine) as s:
        row = s.get(InboxItem, response.json["inbox_id"])
        assert row is not None
        stored = json.dumps(row.headers)
    for name in ("X-Plivo-Signature-V3", "X-Plivo-Signature-V2"):
        assert headers[name] not in stored
        assert row.headers[name.lower()].startswith("sha256:")
    assert row.headers["x-plivo-signature-v3-nonce"] == "n-3"  # audit keeps the nonce


# --- bodies without Content-Length ----------------------------------------------------------


def chunked(client: FlaskClient, path: str, body: bytes, headers: dict[str, str]) -> Any:
    return client.post(
        path,
        input_stream=io.BytesIO(body),
        headers={**headers, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},  # as gunicorn passes chunked bodies
    )


def telnyx_headers(body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    sig = base64.b64encode(TELNYX_KEY.sign(f"{ts}|".encode() + body)).decode()
    return {
        "content-type": "application/json",
        "telnyx-timestamp": ts,
        "telnyx-signature-ed25519": sig,
    }


def telnyx_body(event_id: str, padding: int = 0) -> bytes:
    return json.dumps(
        {
            "data": {
                "event_type": "10dlc.campaign.update",
                "id": event_id,
                "payload": {"pad": "x" * padding},
            }
        }
    ).encode()


def test_chunked_webhook_over_the_limit_is_413_not_truncated(app: Flask) -> None:
    body = telnyx_body("big", padding=MAX_BODY_BYTES)
    response = chunked(app.test_client(), "/webhooks/telnyx", body, telnyx_headers(body))
    assert response.status_code == 413
    with Session(app.extensions["dlcsync"].engine) as s:
        assert s.exec(select(InboxItem)).all() == []


def test_chunked_webhook_under_the_limit_is_read_whole(app: Flask) -> None:
    body = telnyx_body("fits", padding=MAX_BODY_BYTES - 1000)
    response = chunked(app.test_client(), "/webhooks/telnyx", body, telnyx_headers(body))
    assert response.status_code == 200, response.json
    with Session(app.extensions["dlcsync"].engine) as s:
        row = s.get(InboxItem, response.json["inbox_id"])
        assert row is not None and row.body == body


def test_chunked_api_body_over_the_limit_is_413(app: Flask) -> None:
    numbers = [f"+1202555{i:04d}" for i in range(9999)] * 3
    body = json.dumps({"provider": "plivo", "campaign_id": CAMPAIGN, "numbers": numbers})
    assert len(body) > MAX_BODY_BYTES
    response = chunked(
        app.test_client(),
        "/api/v1/links",
        body.encode(),
        {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    with Session(app.extensions["dlcsync"].engine) as s:
        assert s.exec(select(Link)).all() == []


# --- text no database can store -------------------------------------------------------------


@pytest.fixture
def pg_app(pg_url: str) -> Iterator[Flask]:
    app = make_app(pg_url)
    yield app
    app.extensions["dlcsync"].engine.dispose()


@pytest.mark.parametrize("bad", ["evt\x00id", "evt\ud800id"], ids=["nul", "lone-surrogate"])
def test_unstorable_telnyx_event_id_is_400_not_503(pg_app: Flask, bad: str) -> None:
    body = json.dumps(
        {"data": {"event_type": "10dlc.campaign.update", "id": bad, "payload": {}}}
    ).encode()
    response = pg_app.test_client().post(
        "/webhooks/telnyx", data=body, headers=telnyx_headers(body)
    )
    assert response.status_code == 400, response.json
    assert response.json["error"]["code"] == "malformed"


def test_unstorable_plivo_campaign_id_is_400_not_503(pg_app: Flask) -> None:
    body = urlencode(
        {"campaign_id": "C\x00", "number": NUMBER[1:], "event": "number_linking", "status": "x"}
    ).encode()
    response = post_plivo(pg_app.test_client(), body, v3_headers(body, "nul-nonce"))
    assert response.status_code == 400, response.json
