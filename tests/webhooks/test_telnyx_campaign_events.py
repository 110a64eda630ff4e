"""Telnyx sends campaign events to the same URL as phone-number events (the campaign's
webhookURL): a validly signed one is answered 200 and recorded as ignored, never 400 (a 400
makes Telnyx retry and fail over). Issue 12 §1."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from sqlmodel import Session

from common.settings import Settings
from models.tables import InboxItem
from webhooks.app import create_app
from worker.inbox import process_inbox

FIXTURES = Path(__file__).parent.parent / "fixtures" / "telnyx"
KEY = Ed25519PrivateKey.from_private_bytes(b"\x0c" * 32)
PUBLIC = base64.b64encode(KEY.public_key().public_bytes_raw()).decode()


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=db_url,
        telnyx_api_key="KEY-telnyx",
        telnyx_public_key=PUBLIC,
    )
    app = create_app(settings, enqueue=lambda *a: None, broker_ping=lambda: None)
    yield app
    app.extensions["dlcsync"].engine.dispose()


def signed(body: bytes) -> dict[str, str]:
    timestamp = str(int(time.time()))
    signature = KEY.sign(timestamp.encode() + b"|" + body)
    return {
        "content-type": "application/json",
        "telnyx-timestamp": timestamp,
        "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
    }


@pytest.mark.parametrize(
    "fixture",
    ["webhook_campaign_status_update_flat.json", "webhook_campaign_verified.json"],
)
def test_signed_campaign_event_is_accepted_and_ignored(app: Flask, fixture: str) -> None:
    body = (FIXTURES / fixture).read_bytes()
    response = app.test_client().post("/webhooks/telnyx", data=body, headers=signed(body))
    assert response.status_code == 200, response.get_data(as_text=True)
    inbox_id = response.get_json()["inbox_id"]
    services = app.extensions["dlcsync"]
    assert process_inbox(services.engine, services.handlers, [inbox_id]) == {inbox_id: "ignored"}
    with Session(services.engine) as s:
        row = s.get(InboxItem, inbox_id)
        assert row is not None and row.outcome == "ignored"
        assert row.reason and "campaign" in row.reason
    # Telnyx redelivers the same event: a duplicate, still 200.
    again = app.test_client().post("/webhooks/telnyx", data=body, headers=signed(body))
    assert again.status_code == 200 and again.get_json()["duplicate"] is True


def test_unsigned_campaign_event_is_still_refused(app: Flask) -> None:
    body = (FIXTURES / "webhook_campaign_status_update_flat.json").read_bytes()
    headers = signed(b"something else")
    response = app.test_client().post("/webhooks/telnyx", data=body, headers=headers)
    assert response.status_code == 401
