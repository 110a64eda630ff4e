"""Alerts end to end: gunicorn, a real worker and beat, PostgreSQL, Redis, the sandbox, and a
real JSON endpoint receiving Apprise ``json://`` posts.

Every link fails at the sandbox; each FAILED link must reach the endpoint exactly once,
also across a SIGKILL of the worker in the middle of delivery (at least once: duplicates
after such a crash are counted and printed, see docs/alerts.md).
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from models.batch import Entry, link_numbers
from models.db import transaction
from models.statemachine import Source
from models.tables import Alert, Link
from sandbox import SandboxHandle
from tests.stack import Stack, wait_for
from tests.worker.alerting.alert_receiver import Receiver

pytestmark = pytest.mark.integration

FINAL = {"COMPLETED", "FAILED"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver().start()
    yield rec
    rec.stop()


def numbers_for(series: int, campaign: int, count: int) -> list[str]:
    return [f"+1303{series + 2}{campaign:02d}{i:04d}" for i in range(count)]


def request(db: sa.Engine, plan: dict[tuple[str, str], list[str]]) -> None:
    with transaction(db) as s:
        for (provider, campaign), numbers in plan.items():
            link_numbers(s, provider, campaign, [Entry(n) for n in numbers], source=Source.API)


def plan_for(series: int) -> dict[tuple[str, str], list[str]]:
    """Three numbers on each of four campaigns: below the grouping threshold."""
    return {
        (provider, f"CAMP{series}{p}{c}"): numbers_for(series, p * 2 + c, 3)
        for p, provider in enumerate(("plivo", "telnyx"))
        for c in range(2)
    }


def states(db: sa.Engine, numbers: list[str]) -> dict[str, str]:
    with Session(db) as s:
        links = s.exec(select(Link).where(col(Link.number).in_(numbers))).all()
    return {link.number: link.state for link in links}


def received(receiver: Receiver) -> Counter[str]:
    return Counter(n for p in receiver.accepted() for n in p.doc["numbers"])


def start(stack: Stack, urls: str) -> None:
    stack.env["ALERT_URLS"] = urls
    stack.start_web()
    stack.start_worker(concurrency=2)
    stack.start_beat()


def test_every_failed_link_is_alerted_once_even_across_a_worker_kill(
    stack: Stack, sandbox: SandboxHandle, db: sa.Engine, receiver: Receiver
) -> None:
    sandbox.configure(link_failure_ratio=1.0, callbacks_enabled=True, delay=0.5)
    start(stack, receiver.url("hooks/dlcsync"))
    first = [n for ns in plan_for(1).values() for n in ns]
    request(db, plan_for(1))
    wait_for(lambda: set(states(db, first).values()) == {"FAILED"}, 60, f"failed\n{stack.logs()}")
    wait_for(lambda: set(received(receiver)) == set(first), 60, f"alerts\n{stack.logs()}")
    got = received(receiver)
    assert all(got[n] == 1 for n in first), got
    for post in receiver.accepted():
        doc = post.doc
        assert post.path == "/hooks/dlcsync"
        assert doc["kind"] == "link_failed" and doc["provider"] in ("plivo", "telnyx")
        assert doc["campaign_id"].startswith("CAMP1") and doc["numbers"][0].startswith("+1303")

    # Second wave, delivered slowly (1.5 s a post); once every link has failed, the worker
    # is SIGKILLed while it is delivering their alerts.
    receiver.hang = 1.5
    second = [n for ns in plan_for(2).values() for n in ns]
    request(db, plan_for(2))
    wait_for(lambda: set(states(db, second).values()) == {"FAILED"}, 60, f"failed\n{stack.logs()}")
    wait_for(lambda: any(n in received(receiver) for n in second), 60, "delivery under way")
    assert not set(received(receiver)) >= set(second), "delivery finished before the kill"
    stack.procs["worker"].kill()
    receiver.hang = 0.0
    # A new name: its own log file, so "ready" is this worker's, not the killed one's.
    stack.start_worker("worker2", concurrency=2)
    wait_for(
        lambda: set(received(receiver)) >= set(second),
        90,
        f"alerts after kill\n{stack.logs()}",
    )
    got = received(receiver)
    missing = [n for n in first + second if got[n] == 0]
    duplicates = {n: c for n, c in got.items() if c > 1}
    print(f"after the SIGKILL: {len(duplicates)} duplicate alert(s): {duplicates}")
    assert missing == []
    assert set(got) == set(first + second)
    assert set(states(db, second).values()) == {"FAILED"}
    with Session(db) as s:
        rows = s.exec(select(Alert).where(col(Alert.kind) == "link_failed")).all()
    assert sorted(a.number for a in rows if a.number) == sorted(first + second)
    assert {a.state for a in rows} == {"sent"}


def test_an_unreachable_endpoint_is_retried_and_never_blocks_links(
    stack: Stack, sandbox: SandboxHandle, db: sa.Engine, receiver: Receiver
) -> None:
    with socket.socket() as sock:  # nothing listens here: connection refused
        sock.bind(("127.0.0.1", 0))
        dead = f"json://127.0.0.1:{sock.getsockname()[1]}/down"
    receiver.hang = 30.0  # and this one accepts the connection but never answers in time
    sandbox.configure(link_failure_ratio=0.5, callbacks_enabled=True, delay=0.5)
    start(stack, f"{receiver.url('slow')} {dead}")
    plan = plan_for(3)
    numbers = [n for ns in plan.values() for n in ns]
    request(db, plan)
    wait_for(
        lambda: (
            set(states(db, numbers).values()) <= FINAL and len(states(db, numbers)) == len(numbers)
        ),
        60,
        f"links final while alerts cannot be delivered\n{stack.logs()}",
    )
    failed = [n for n, state in states(db, numbers).items() if state == "FAILED"]
    assert failed, "the sandbox failed some links"

    def retried() -> bool:
        with Session(db) as s:
            rows = s.exec(select(Alert).where(col(Alert.number).in_(failed))).all()
        return len(rows) == len(failed) and all(
            a.state == "pending" and a.attempts >= 1 and a.last_error for a in rows
        )

    wait_for(retried, 60, f"failed attempts recorded\n{stack.logs()}")
    with Session(db) as s:
        rows = s.exec(select(Alert).where(col(Alert.number).in_(failed))).all()
    for a in rows:
        assert a.next_attempt_at is not None and a.last_error is not None
        assert "url 2" in a.last_error  # the refused one is named
    assert received(receiver) == Counter()
