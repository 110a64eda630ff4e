"""Fixtures for the dashboard, /metrics and logging tests.

Data is seeded through the real flow (``models.batch.link_numbers`` then
``models.links.apply_observation``), never by writing rows by hand, so the dashboard is checked
against what the service functions really produce.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from common.settings import Settings
from models.batch import Entry, link_numbers
from models.db import transaction
from models.links import apply_observation
from models.statemachine import Direction, Observation, Signal, Source
from models.tables import utcnow
from webhooks.app import create_app

TOKEN = "web-test-token-0123456789abcdefghij"
SECRET_KEY = "web-test-secret-key-0123456789abcdef"
STUCK_AFTER = 3600
TELNYX_KEY = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
TELNYX_PUBLIC = base64.b64encode(
    TELNYX_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
).decode()


def make_web_app(database_url: str, **settings: Any) -> Flask:
    values: dict[str, Any] = {
        "database_url": database_url,
        "api_token": TOKEN,
        "secret_key": SECRET_KEY,
        "plivo_auth_id": "MAXXXXXXXXXXXXXXXXXX",
        "plivo_auth_token": "plivo-token",
        "telnyx_api_key": "KEY-telnyx",
        "telnyx_public_key": TELNYX_PUBLIC,
        "stuck_after_seconds": STUCK_AFTER,
        **settings,
    }
    return create_app(Settings(**values), enqueue=lambda *a: None, broker_ping=lambda: None)


@pytest.fixture
def web_app(sqlite_url: str) -> Iterator[Flask]:
    app = make_web_app(sqlite_url)
    yield app
    app.extensions["dlcsync"].engine.dispose()


def app_engine(app: Flask) -> sa.Engine:
    engine: sa.Engine = app.extensions["dlcsync"].engine
    return engine


# --- seeding through the real flow ----------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    #: (provider, campaign) -> state -> count, as the seeding intends it.
    expected: dict[tuple[str, str], dict[str, int]]
    failed: dict[str, str]  # number -> reason (telnyx)
    stuck: list[str]
    drifted: list[str]


def _numbers(prefix: str, count: int) -> list[str]:
    return [f"+1{prefix}555{i:04d}" for i in range(100, 100 + count)]


def seed(engine: sa.Engine, now: datetime | None = None) -> Seeded:
    """Links on two providers and three campaigns, in every interesting state."""
    now = now or utcnow()
    long_ago = now - timedelta(seconds=STUCK_AFTER * 3)
    tx = _numbers("202", 10)  # telnyx TCAMP-A
    tb = _numbers("212", 3)  # telnyx TCAMP-B
    pl = _numbers("415", 6)  # plivo CPLIVO1
    failed = {
        tx[0]: "carrier rejected: brand not verified",
        tx[1]: "campaign suspended by carrier",
    }
    with transaction(engine) as s:
        for provider, campaign, numbers, when in (
            ("telnyx", "TCAMP-A", tx, long_ago),
            ("telnyx", "TCAMP-B", tb, now - timedelta(minutes=5)),
            ("plivo", "CPLIVO1", pl, long_ago),
        ):
            results = link_numbers(
                s, provider, campaign, [Entry(n) for n in numbers], source=Source.API, now=when
            )
            assert all(r.accepted for r in results), results

    def observe(
        provider: str,
        number: str,
        status: str,
        signal: Signal,
        campaign: str,
        at: datetime,
        source: Source = Source.POLL,
        reason: str | None = None,
    ) -> None:
        obs = Observation(
            source=source,
            provider_status=status,
            observed_at=at,
            signal=signal,
            direction=Direction.LINK,
            campaign_id=campaign,
            reason=reason,
        )
        with transaction(engine) as s:
            decision = apply_observation(s, provider, number, obs, now=at)
            assert decision.verdict.value == "applied", (number, decision)

    t1 = long_ago + timedelta(seconds=10)
    t2 = now - timedelta(seconds=30)
    # telnyx TCAMP-A: 2 failed, 2 stuck in PROCESSING, 5 completed (one of which a later poll
    # finds unlinked: drift), 1 still LINK_REQUESTED.
    for number, reason in failed.items():
        observe("telnyx", number, "FAILED_ASSIGNMENT", Signal.FAILED, "TCAMP-A", t2,
                Source.WEBHOOK, reason)  # fmt: skip
    stuck = tx[2:4]
    for number in stuck:
        observe("telnyx", number, "PENDING_ASSIGNMENT", Signal.PENDING, "TCAMP-A", t1)
    for number in tx[4:9]:
        observe("telnyx", number, "ASSIGNED", Signal.LINKED, "TCAMP-A", t1)
    # A completed number later found unlinked by a poll: drift.
    drifted = [tx[8]]
    obs = Observation(
        source=Source.POLL,
        provider_status="NOT_FOUND",
        observed_at=t2,
        signal=Signal.NOT_LINKED,
        campaign_id="TCAMP-A",
        reason="not found at the provider",
    )
    with transaction(engine) as s:
        apply_observation(s, "telnyx", tx[8], obs, now=t2)
    # telnyx TCAMP-B: all PROCESSING, recently (not stuck).
    for number in tb:
        observe("telnyx", number, "PENDING_ASSIGNMENT", Signal.PENDING, "TCAMP-B", t2)
    # plivo CPLIVO1: 4 completed, 1 failed, 1 requested.
    for number in pl[:4]:
        observe("plivo", number, "COMPLETED", Signal.LINKED, "CPLIVO1", t1)
    observe("plivo", pl[4], "FAILED", Signal.FAILED, "CPLIVO1", t2, reason="number not eligible")
    failed_all = failed | {pl[4]: "number not eligible"}
    return Seeded(
        expected={
            ("telnyx", "TCAMP-A"): {
                "FAILED": 2,
                "PROCESSING": 2,
                "COMPLETED": 4,
                "UNLINKED": 1,
                "LINK_REQUESTED": 1,
            },
            ("telnyx", "TCAMP-B"): {"PROCESSING": 3},
            ("plivo", "CPLIVO1"): {"COMPLETED": 4, "FAILED": 1, "LINK_REQUESTED": 1},
        },
        failed=failed_all,
        stuck=list(stuck),
        drifted=drifted,
    )


# --- Telnyx callbacks signed with the test key ----------------------------------------------


def telnyx_callback(number: str, campaign: str, status: str, event_id: str) -> bytes:
    body = {
        "data": {
            "event_type": "10dlc.phone_number.update",
            "id": event_id,
            "occurred_at": utcnow().isoformat(),
            "payload": {
                "campaignId": campaign,
                "phoneNumber": number,
                "status": status,
                "type": "ASSIGNMENT",
                "reasons": [],
            },
            "record_type": "event",
        },
        "meta": {"attempt": 1},
    }
    return json.dumps(body).encode()


def sign_telnyx(body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    sig = TELNYX_KEY.sign(f"{ts}|".encode() + body)
    return {
        "content-type": "application/json",
        "telnyx-timestamp": ts,
        "telnyx-signature-ed25519": base64.b64encode(sig).decode(),
    }


# --- reading /metrics ------------------------------------------------------------------------


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text page, keyed by (name, labels). Parsing is the check
    that the page is valid exposition format."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(
    page: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return page.get((name, frozenset(labels.items())), 0.0)
