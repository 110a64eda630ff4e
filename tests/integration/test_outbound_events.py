"""Done-when for outbound events: gunicorn, a real worker and beat, PostgreSQL, Redis, and
the sandbox as both carrier and event receiver (it verifies every signature with the
``standardwebhooks`` package) refusing 30 % of deliveries with 503.

Every audit row of a run of 40 links, with failures and unlinks, is delivered; each
webhook-id always came with the same body; the events of each number are exactly its
history; a carrier mapping failure from the sandbox shows in history and alerts once.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from models.batch import Entry, link_numbers
from models.db import transaction
from models.links import request_unlink_of
from models.statemachine import Source
from models.tables import Alert, EventDelivery, Link, LinkEvent, MappingChange
from sandbox import SandboxHandle
from tests.stack import Stack, wait_for

pytestmark = pytest.mark.integration

SECRET = "whsec_" + base64.b64encode(b"integration-events-secret-000000").decode()
PLIVO = [f"+1202555{i:04d}" for i in range(20)]
TELNYX = [f"+1312555{i:04d}" for i in range(20)]


@pytest.fixture
def stack_env(stack_env: dict[str, str], sandbox: SandboxHandle) -> dict[str, str]:
    return stack_env | {
        "EVENT_WEBHOOK_URLS": f"{sandbox.url}/_sandbox/events",
        "EVENT_WEBHOOK_SECRET": SECRET,
    }


def _settled(db: sa.Engine) -> bool:
    with Session(db) as s:
        states = {ln.state for ln in s.exec(select(Link)).all()}
    return states <= {"COMPLETED", "FAILED", "UNLINKED", "UNLINK_FAILED"}


def _mapping_seen(db: sa.Engine) -> bool:
    with Session(db) as s:
        return all(
            ln.carrier_mapping
            for ln in s.exec(select(Link).where(Link.provider == "telnyx")).all()
            if ln.state == "COMPLETED"
        )


def _undelivered(db: sa.Engine) -> int:
    with Session(db) as s:
        audit = len(s.exec(select(LinkEvent.id)).all())
        done = len(s.exec(select(EventDelivery.id).where(EventDelivery.state == "delivered")).all())
    return audit - done


def test_every_audit_row_is_delivered_signed_and_identical_on_retry(
    stack: Stack, sandbox: SandboxHandle, db: sa.Engine
) -> None:
    sandbox.configure(
        event_secret=SECRET,
        event_refuse_ratio=0.3,
        link_failure_ratio=0.25,
        delay=0.5,
        telnyx_mapping_failures={"*": "att"},  # every assigned number
    )
    stack.env["TELNYX_RATE_LIMIT_PER_SECOND"] = "20"
    stack.start_web()
    stack.start_worker(concurrency=2)
    stack.start_beat()

    with transaction(db) as s:
        link_numbers(s, "plivo", "CPLIVO1", [Entry(n) for n in PLIVO], source=Source.API)
        link_numbers(s, "telnyx", "TCAMP-1", [Entry(n) for n in TELNYX], source=Source.API)
    wait_for(lambda: _settled(db), 120, "links settled")
    with Session(db) as s:
        completed = [ln.number for ln in s.exec(select(Link)).all() if ln.state == "COMPLETED"]
    for number in completed[::3]:  # one request each, as the API would
        with transaction(db) as s:
            provider = "plivo" if number in PLIVO else "telnyx"
            request_unlink_of(s, provider, number, source=Source.API)
    wait_for(lambda: _settled(db), 120, "unlinks settled")
    wait_for(lambda: _mapping_seen(db), 60, "every linked Telnyx number's mapping polled")
    # Refusals stop once every change is made: what is left arrives at its next retry (the
    # backoff doubles from 5 s, so a run of refusals can put that a few minutes out).
    sandbox.configure(event_refuse_ratio=0.0)
    try:
        wait_for(lambda: _undelivered(db) == 0, 300, "every event delivered")
    except TimeoutError:
        with Session(db) as s:
            rows = s.exec(select(EventDelivery)).all()
            print({(d.state, d.attempts, d.last_error) for d in rows if d.state != "delivered"})
        raise

    log = httpx.get(f"{sandbox.url}/_sandbox/events?limit=100000", timeout=10).json()
    assert log["counts"]["bad_signature"] == 0
    assert log["counts"]["refused"] > 0  # retries really happened
    bodies: dict[str, set[str]] = defaultdict(set)
    received: dict[str, set[int]] = defaultdict(set)
    for item in log["events"]:
        bodies[item["webhook_id"]].add(item["body"])
        data = json.loads(item["body"])["data"]
        received[data["number"]].add(data["event_id"])
    assert all(len(b) == 1 for b in bodies.values())  # a re-sent id is byte-identical
    with Session(db) as s:
        history: dict[str, set[int]] = defaultdict(set)
        for e in s.exec(select(LinkEvent)).all():
            history[e.number].add(e.id or 0)
        still_linked = {
            ln.id
            for ln in s.exec(select(Link)).all()
            if ln.provider == "telnyx" and ln.state == "COMPLETED"
        }
        mapping_failed = {
            m.link_id
            for m in s.exec(select(MappingChange)).all()
            if (m.carrier, m.to_status) == ("att", "FAILED")
        }
        alerts = [
            a.link_id
            for a in s.exec(select(Alert).where(Alert.kind == "carrier_mapping_failed")).all()
            if not a.is_digest  # a burst of them is also summed up in a digest row
        ]
    assert received == history
    assert sum(len(v) for v in history.values()) >= 40 * 2 + len(completed[::3])
    # The sandbox's mapping failure shows in history and alerts once per link.
    # (A number unlinked before a poll saw its mapping may have none.)
    assert still_linked and still_linked <= mapping_failed
    assert sorted(alerts) == sorted(mapping_failed)
