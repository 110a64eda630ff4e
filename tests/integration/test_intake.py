"""Webhook intake end to end: gunicorn, a real Celery worker, PostgreSQL, Redis, the sandbox."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import Session, select

from models.db import transaction
from models.links import apply_observation, request_link_of
from models.statemachine import Observation, Signal, Source
from models.tables import InboxItem, Link, LinkEvent
from providers.registry import build_clients
from sandbox import SandboxHandle
from tests.stack import RedisServer, Stack, wait_for

pytestmark = pytest.mark.integration


def link_state(db: sa.Engine, provider: str, number: str) -> str | None:
    with Session(db) as s:
        return s.exec(
            select(Link.state).where(Link.provider == provider, Link.number == number)
        ).first()


def inbox(db: sa.Engine) -> list[InboxItem]:
    with Session(db) as s:
        return list(s.exec(select(InboxItem).order_by(InboxItem.id)).all())


def audit(db: sa.Engine, number: str) -> list[tuple[str | None, str]]:
    with Session(db) as s:
        rows = s.exec(select(LinkEvent).where(LinkEvent.number == number).order_by(LinkEvent.id))
        return [(r.from_state, r.to_state) for r in rows]


def telnyx_event(number: str, campaign: str, kind: str, status: str, at: datetime) -> dict:
    return {
        "data": {
            "event_type": "10dlc.phone_number.update",
            "id": f"evt-{number}-{kind}-{status}-{at.timestamp()}",
            "occurred_at": at.isoformat(),
            "payload": {
                "campaignId": campaign,
                "phoneNumber": number,
                "status": status,
                "type": kind,
                "reasons": [],
            },
            "record_type": "event",
        },
        "meta": {"attempt": 1},
    }


_seed: list[bytes] = []


def sign_telnyx(body: bytes, ts: int | None = None, seed: bytes | None = None) -> dict[str, str]:
    """Sign as the sandbox's Telnyx account does (its key is what dlcsync trusts)."""
    ts = int(time.time()) if ts is None else ts
    key = Ed25519PrivateKey.from_private_bytes(seed or _seed[-1])
    sig = key.sign(f"{ts}|".encode() + body)
    return {
        "content-type": "application/json",
        "telnyx-timestamp": str(ts),
        "telnyx-signature-ed25519": base64.b64encode(sig).decode(),
    }


@pytest.fixture
def running(stack: Stack, sandbox: SandboxHandle) -> Stack:
    _seed.append(bytes.fromhex(sandbox.config.telnyx_seed))
    stack.start_web()
    stack.start_worker()
    return stack


def test_sandbox_callbacks_move_links_to_final_states(
    running: Stack, sandbox: SandboxHandle, db: sa.Engine
) -> None:
    """Link through the sandbox APIs; only its signed callbacks move our links."""
    sandbox.configure(link_failure_ratio=0.0)
    numbers = {"plivo": "+12025550111", "telnyx": "+12025550112"}
    with transaction(db) as s:
        for provider, number in numbers.items():
            request_link_of(s, provider, number, "CAMPA01", source=Source.API)
    clients = build_clients(running.settings())
    for provider, number in numbers.items():
        clients[provider].link("CAMPA01", [number])
    # Plivo calls back "created" at once; wait for it so the audit order is fixed.
    wait_for(lambda: link_state(db, "plivo", numbers["plivo"]) == "PROCESSING", 30, "created")
    sandbox.settle(wait_callbacks=True)
    for provider, number in numbers.items():
        wait_for(
            lambda p=provider, n=number: link_state(db, p, n) == "COMPLETED",
            30,
            f"{provider} link COMPLETED\n{running.logs()}",
        )
    assert audit(db, numbers["plivo"]) == [
        (None, "LINK_REQUESTED"),
        ("LINK_REQUESTED", "PROCESSING"),
        ("PROCESSING", "COMPLETED"),
    ]
    # Telnyx sends no "pending" callback by default: straight to the final state.
    assert audit(db, numbers["telnyx"]) == [
        (None, "LINK_REQUESTED"),
        ("LINK_REQUESTED", "COMPLETED"),
    ]
    assert all(i.outcome is not None for i in inbox(db))


def test_five_concurrent_deliveries_make_one_transition(running: Stack, db: sa.Engine) -> None:
    number = "+12025550121"
    with transaction(db) as s:
        request_link_of(s, "telnyx", number, "C5", source=Source.API)
    body = json.dumps(
        telnyx_event(number, "C5", "ASSIGNMENT", "success", datetime.now(UTC))
    ).encode()
    headers = sign_telnyx(body)

    def post(_: int) -> int:
        return httpx.post(
            f"{running.web_url}/webhooks/telnyx", content=body, headers=headers
        ).status_code

    with ThreadPoolExecutor(5) as pool:
        assert list(pool.map(post, range(5))) == [200] * 5
    wait_for(lambda: all(i.outcome for i in inbox(db)), 20, "inbox processed")
    rows = inbox(db)
    assert len(rows) == 1
    assert (rows[0].outcome, rows[0].duplicate_deliveries) == ("applied", 4)
    assert audit(db, number) == [(None, "LINK_REQUESTED"), ("LINK_REQUESTED", "COMPLETED")]


def test_reverse_order_and_older_generation(running: Stack, db: sa.Engine) -> None:
    number = "+12025550131"
    t0 = datetime.now(UTC) - timedelta(seconds=60)  # every event below lies in the past
    with transaction(db) as s:
        request_link_of(s, "telnyx", number, "C6", source=Source.API, now=t0)
    late_first = telnyx_event(number, "C6", "ASSIGNMENT", "success", t0 + timedelta(seconds=20))
    early_second = telnyx_event(
        number, "C6", "STATUS_UPDATE", "PENDING", t0 + timedelta(seconds=10)
    )
    # The later event arrives (and is applied) first; the earlier one arrives after it.
    for n, event in enumerate((late_first, early_second), start=1):
        body = json.dumps(event).encode()
        r = httpx.post(
            f"{running.web_url}/webhooks/telnyx", content=body, headers=sign_telnyx(body)
        )
        assert r.status_code == 200
        wait_for(lambda n=n: len([i for i in inbox(db) if i.outcome]) == n, 20, "processed")
    assert [i.outcome for i in inbox(db)] == ["applied", "stale"]
    assert link_state(db, "telnyx", number) == "COMPLETED"
    # An event from before the current generation (a relink) changes nothing.
    with transaction(db) as s:
        apply_observation(
            s,
            "telnyx",
            number,
            Observation(
                Source.POLL, "FAILED_ASSIGNMENT", datetime.now(UTC), Signal.FAILED, generation=1
            ),
        )
        request_link_of(s, "telnyx", number, "C6", source=Source.API)  # relink -> generation 2
    # Sent before the relink (generation 2) began: it belongs to generation 1.
    old = telnyx_event(number, "C6", "ASSIGNMENT", "success", t0 + timedelta(seconds=1))
    body = json.dumps(old).encode()
    assert (
        httpx.post(
            f"{running.web_url}/webhooks/telnyx", content=body, headers=sign_telnyx(body)
        ).status_code
        == 200
    )
    wait_for(lambda: all(i.outcome for i in inbox(db)), 20, "processed")
    assert inbox(db)[-1].outcome == "ignored"
    assert link_state(db, "telnyx", number) == "LINK_REQUESTED"


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda b, h: (b, {**h, "telnyx-signature-ed25519": "AAAA"}), 401),  # forged
        (lambda b, h: (b, sign_telnyx(b, seed=b"\x01" * 32)), 401),  # another key
        (lambda b, h: (b[:-5], h), 401),  # truncated after signing
        (lambda b, h: (b, sign_telnyx(b, ts=int(time.time()) - 3600)), 401),  # replayed
        (lambda b, h: (b"not json", sign_telnyx(b"not json")), 400),
        (lambda b, h: (b"", sign_telnyx(b"")), 400),
        (lambda b, h: (b"x" * (300 * 1024), h), 413),
        (lambda b, h: (b, {}), 401),
    ],
)
def test_bad_requests_change_nothing(running: Stack, db: sa.Engine, mutate, status: int) -> None:
    body = json.dumps(
        telnyx_event("+12025550141", "C7", "ASSIGNMENT", "success", datetime.now(UTC))
    ).encode()
    body2, headers = mutate(body, sign_telnyx(body))
    r = httpx.post(f"{running.web_url}/webhooks/telnyx", content=body2, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"]
    assert inbox(db) == []


def test_postgres_down_answers_503_fast_then_resent_deliveries_apply(
    running: Stack, db: sa.Engine, pg_url: str
) -> None:
    number = "+12025550151"
    with transaction(db) as s:
        request_link_of(s, "telnyx", number, "C8", source=Source.API)
    body = json.dumps(
        telnyx_event(number, "C8", "ASSIGNMENT", "success", datetime.now(UTC))
    ).encode()
    cluster = _pg_cluster()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, "stop", "-m", "fast"], check=True
    )
    try:
        plivo_body, plivo_headers = sign_plivo(
            running,
            {
                "number": "12025550151",
                "campaign_id": "C8",
                "event": "number_linking",
                "status": "success",
            },
        )
        for path, content, headers in (
            ("telnyx", body, sign_telnyx(body)),
            ("plivo", plivo_body, plivo_headers),
        ):
            started = time.monotonic()
            r = httpx.post(
                f"{running.web_url}/webhooks/{path}", content=content, headers=headers, timeout=10
            )
            elapsed = time.monotonic() - started
            assert r.status_code == 503, (path, r.text)
            assert elapsed < 1.0, (path, elapsed)
    finally:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, "start"], check=True
        )
    wait_for(lambda: _pg_up(db), 30, "PostgreSQL back")
    assert inbox(db) == []
    r = httpx.post(f"{running.web_url}/webhooks/telnyx", content=body, headers=sign_telnyx(body))
    assert r.status_code == 200
    wait_for(lambda: link_state(db, "telnyx", number) == "COMPLETED", 30, "applied after resend")


def test_redis_down_still_accepts_and_sweeper_applies_later(
    running: Stack, db: sa.Engine, redis_server: RedisServer
) -> None:
    number = "+12025550161"
    with transaction(db) as s:
        request_link_of(s, "telnyx", number, "C9", source=Source.API)
    running.procs["worker"].stop()
    redis_server.stop()
    try:
        body = json.dumps(
            telnyx_event(number, "C9", "ASSIGNMENT", "success", datetime.now(UTC))
        ).encode()
        r = httpx.post(
            f"{running.web_url}/webhooks/telnyx",
            content=body,
            headers=sign_telnyx(body),
            timeout=10,
        )
        assert r.status_code == 200, r.text
        assert httpx.get(f"{running.web_url}/readyz").status_code == 503
    finally:
        redis_server.start()
    assert [i.outcome for i in inbox(db)] == [None]
    running.start_worker()
    running.start_beat()
    wait_for(
        lambda: link_state(db, "telnyx", number) == "COMPLETED",
        60,
        f"sweeper applied the delivery\n{running.logs()}",
    )
    assert httpx.get(f"{running.web_url}/readyz").status_code == 200


def test_worker_sigkill_mid_processing_loses_nothing(running: Stack, db: sa.Engine) -> None:
    numbers = [f"+1202555{2000 + i:04d}" for i in range(60)]
    with transaction(db) as s:
        for n in numbers:
            request_link_of(s, "telnyx", n, "C10", source=Source.API)
    # Only callbacks in this test: no API credentials, so beat's reconciler sends nothing.
    for var in ("TELNYX_API_KEY", "PLIVO_AUTH_ID", "PLIVO_AUTH_TOKEN"):
        running.env.pop(var)
    running.start_beat()

    def send(n: str) -> int:
        body = json.dumps(
            telnyx_event(n, "C10", "ASSIGNMENT", "success", datetime.now(UTC))
        ).encode()
        return httpx.post(
            f"{running.web_url}/webhooks/telnyx", content=body, headers=sign_telnyx(body)
        ).status_code

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(send, n) for n in numbers]
        time.sleep(0.3)  # let processing start, then kill the worker and its children
        running.procs["worker"].kill()
        assert all(f.result() == 200 for f in futures)
    running.start_worker()
    wait_for(
        lambda: all(i.outcome for i in inbox(db)) and len(inbox(db)) == 60,
        90,
        f"all processed\n{running.logs()}",
    )
    with Session(db) as s:
        done = s.exec(
            select(sa.func.count()).select_from(LinkEvent).where(LinkEvent.to_state == "COMPLETED")
        ).one()
    assert done == 60
    assert {i.outcome for i in inbox(db)} == {"applied"}


def sign_plivo(stack: Stack, params: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """A form-encoded Plivo callback signed (V3) with the sandbox account's token."""
    from urllib.parse import urlencode

    from providers.plivo import compute_signature_v3

    url = f"{stack.env['PUBLIC_URL']}/webhooks/plivo"
    nonce = "12345678901234567890"
    sig = compute_signature_v3(stack.env["PLIVO_AUTH_TOKEN"], "POST", url, params, nonce)
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "x-plivo-signature-v3": sig,
        "x-plivo-signature-v3-nonce": nonce,
    }
    return urlencode(params).encode(), headers


def _pg_cluster() -> list[str]:
    out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True)
    version, name = out.stdout.split()[:2]
    return [version, name]


def _pg_up(db: sa.Engine) -> bool:
    with db.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    return True
