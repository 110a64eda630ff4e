"""Alert delivery through Apprise to a real local JSON endpoint, on SQLite and PostgreSQL.

Time is controlled with time-machine: the backoff lives in ``next_attempt_at``, so a test
moves the clock past it instead of sleeping.
"""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
import structlog
import time_machine
from sqlmodel import Session, col, select

from common.metrics import ALERT_DELIVERIES
from models.alerts import delivery, messages
from models.alerts.states import DeliveryState
from models.db import transaction
from models.links import request_link_of
from models.statemachine import AlertKind, Signal, Source
from models.tables import Alert
from tests.worker.alerting.alert_helpers import REASON, fail_links, fail_unlink, number, observe
from tests.worker.alerting.alert_receiver import Receiver
from worker.alerting import deliver_alerts

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def rows(engine: sa.Engine, *where: sa.ColumnElement[bool]) -> list[Alert]:
    with Session(engine) as s:
        return list(s.exec(select(Alert).where(*where).order_by(col(Alert.id))).all())


def dead_url() -> str:
    """A port nothing listens on: connection refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"json://127.0.0.1:{port}/alerts"


def counter(result: str) -> float:
    return ALERT_DELIVERIES.labels(result=result)._value.get()


def test_every_failed_transition_is_delivered_exactly_once(
    engine: sa.Engine, receiver: Receiver
) -> None:
    with time_machine.travel(T0, tick=False):
        fail_links(engine, [number(1), number(2), number(3)], now=T0)
        fail_unlink(engine, number(4), now=T0)
        stats = deliver_alerts(engine, [receiver.url()])
        assert stats.sent == 4
        again = deliver_alerts(engine, [receiver.url()])
    assert again.sent == 0
    posts = receiver.accepted()
    assert len(posts) == 4
    docs = sorted((p.doc for p in posts), key=lambda d: d["numbers"])
    assert [d["numbers"] for d in docs] == [[number(i)] for i in (1, 2, 3, 4)]
    assert [d["kind"] for d in docs] == ["link_failed"] * 3 + ["unlink_failed"]
    assert {(d["provider"], d["campaign_id"]) for d in docs[:3]} == {("plivo", "CAMP1")}
    assert docs[3]["provider"] == "telnyx"
    first = docs[0]
    assert first["reason"] == REASON and first["provider_status"] == "FAILED"
    assert first["since"] == T0.isoformat()
    assert "dlcsync link --provider plivo --campaign CAMP1 +12025550001" in first["next_steps"]
    assert posts[0].body["title"].startswith("[dlcsync]")
    assert posts[0].body["type"] == "failure"
    for alert in rows(engine):
        assert alert.state == DeliveryState.SENT and alert.sent_at == T0 and alert.attempts == 1


def test_a_500_is_retried_with_backoff(engine: sa.Engine, receiver: Receiver) -> None:
    receiver.status = 500
    with time_machine.travel(T0, tick=False) as clock:
        fail_links(engine, [number(1)], now=T0)
        stats = deliver_alerts(engine, [receiver.url()])
        assert stats.retrying == 1
        (alert,) = rows(engine)
        assert alert.state == DeliveryState.PENDING and alert.attempts == 1
        assert alert.last_error and "500" in alert.last_error
        assert alert.next_attempt_at is not None
        wait = alert.next_attempt_at - T0
        assert delivery.BACKOFF_BASE / 2 <= wait <= delivery.BACKOFF_BASE
        # Not due yet: nothing is sent.
        assert deliver_alerts(engine, [receiver.url()]).sent == 0
        assert len(receiver.posts) == 1
        receiver.status = 200
        clock.shift(wait + timedelta(seconds=1))
        assert deliver_alerts(engine, [receiver.url()]).sent == 1
    assert len(receiver.accepted()) == 1
    (alert,) = rows(engine)
    assert alert.state == DeliveryState.SENT and alert.attempts == 2 and alert.last_error is None


def test_an_unreachable_endpoint_backs_off_then_gives_up(engine: sa.Engine) -> None:
    url = dead_url()
    gave_up_before = counter("gave_up")
    with time_machine.travel(T0, tick=False) as clock:
        fail_links(engine, [number(1)], now=T0)
        waits = []
        for attempt in range(1, delivery.MAX_ATTEMPTS + 1):
            deliver_alerts(engine, [url])
            (alert,) = rows(engine)
            assert alert.attempts == attempt
            if attempt < delivery.MAX_ATTEMPTS:
                assert alert.state == DeliveryState.PENDING and alert.next_attempt_at is not None
                wait = alert.next_attempt_at - datetime.now(UTC)
                full = min(delivery.BACKOFF_CAP, delivery.BACKOFF_BASE * 2 ** (attempt - 1))
                assert full / 2 <= wait <= full
                waits.append(wait)
                clock.shift(wait + timedelta(seconds=1))
        assert deliver_alerts(engine, [url]).sent == 0  # nothing left to try
    (alert,) = rows(engine)
    assert alert.state == DeliveryState.FAILED and alert.next_attempt_at is None
    assert alert.last_error and "url 1" in alert.last_error
    assert max(waits) <= delivery.BACKOFF_CAP
    assert counter("gave_up") == gave_up_before + 1


def test_one_dead_url_does_not_stop_the_others_nor_resend_to_them(
    engine: sa.Engine, receiver: Receiver
) -> None:
    urls = [receiver.url("good"), dead_url()]
    with time_machine.travel(T0, tick=False) as clock:
        fail_links(engine, [number(1), number(2)], now=T0)
        deliver_alerts(engine, urls)
        assert len(receiver.accepted()) == 2
        assert {a.state for a in rows(engine)} == {DeliveryState.PENDING}
        clock.shift(delivery.BACKOFF_BASE + timedelta(seconds=1))
        deliver_alerts(engine, [urls[0]])  # the dead URL is gone from ALERT_URLS
    assert len(receiver.accepted()) == 2  # the good endpoint got each alert once
    assert {a.state for a in rows(engine)} == {DeliveryState.SENT}


def test_without_alert_urls_alerts_are_logged_and_stored(engine: sa.Engine) -> None:
    with time_machine.travel(T0, tick=False):
        fail_links(engine, [number(1)], now=T0)
        with structlog.testing.capture_logs() as logs:
            stats = deliver_alerts(engine, [])
    assert stats.logged == 1
    (alert,) = rows(engine)
    assert alert.state == DeliveryState.LOGGED and alert.sent_at == T0
    (entry,) = [e for e in logs if e["event"] == "alert"]
    assert entry["kind"] == "link_failed" and entry["number"] == number(1)
    assert REASON in entry["text"] and "What to do" in entry["text"]


def test_a_worker_killed_mid_send_is_covered_by_the_lease(
    engine: sa.Engine, receiver: Receiver
) -> None:
    with time_machine.travel(T0, tick=False) as clock:
        fail_links(engine, [number(1)], now=T0)
        with transaction(engine) as s:  # a worker claims it, then dies before sending
            (claim,) = delivery.claim_due(s)
        assert deliver_alerts(engine, [receiver.url()]).sent == 0  # still leased
        clock.shift(delivery.SEND_LEASE + timedelta(seconds=1))
        assert deliver_alerts(engine, [receiver.url()]).sent == 1
        with transaction(engine) as s:  # the dead worker's late finish changes nothing
            assert not delivery.mark_delivered(s, claim, delivered_to=(), logged_only=False)
    assert len(receiver.accepted()) == 1
    (alert,) = rows(engine)
    assert alert.state == DeliveryState.SENT and alert.attempts == 2


def test_concurrent_workers_never_send_the_same_alert(
    engine: sa.Engine, receiver: Receiver
) -> None:
    # 40 campaigns with one failure each: no grouping, 40 single alerts.
    for i in range(40):
        fail_links(engine, [number(i)], campaign=f"C{i:02d}")
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(4):
                deliver_alerts(engine, [receiver.url()], limit=7, exclusive=False)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    sent = [p.doc["numbers"][0] for p in receiver.accepted()]
    assert sorted(sent) == sorted(number(i) for i in range(40))
    assert {a.state for a in rows(engine)} == {DeliveryState.SENT}


def test_a_hanging_endpoint_never_blocks_link_processing(
    engine: sa.Engine, receiver: Receiver
) -> None:
    receiver.hang = 1.5
    fail_links(engine, [number(1)])
    url = receiver.url() + "?rto=0.5"
    runner = threading.Thread(target=deliver_alerts, args=(engine, [url]))
    runner.start()
    time.sleep(0.2)  # the delivery is now waiting on the endpoint
    started = time.monotonic()
    fail_links(engine, [number(i) for i in range(2, 12)], campaign="OTHER")
    took = time.monotonic() - started
    runner.join(10)
    # Blocked, it would wait for the rest of the 1.5 s hang (>= 1.3 s); 1.0 s leaves room for
    # a loaded machine without letting a blocked run pass.
    assert took < 1.0, f"link processing waited {took:.2f}s for alert delivery"
    first = rows(engine, col(Alert.number) == number(1))[0]
    assert first.state == DeliveryState.PENDING and first.attempts == 1 and first.last_error


def test_drift_is_alerted_once(engine: sa.Engine, receiver: Receiver) -> None:
    with time_machine.travel(T0, tick=False) as clock:
        with transaction(engine) as s:
            request_link_of(s, "plivo", number(1), "CAMP1", source=Source.API, now=T0)
            observe(s, "plivo", number(1), Signal.LINKED, "COMPLETED", now=T0 + SECOND)
        for _ in range(3):  # the same drift seen by three polls
            clock.shift(timedelta(seconds=5))
            now = datetime.now(UTC)
            with transaction(engine) as s:
                observe(s, "plivo", number(1), Signal.NOT_LINKED, "NOT_FOUND", now=now)
        deliver_alerts(engine, [receiver.url()])
    drift = rows(engine, col(Alert.kind) == AlertKind.DRIFT.value)
    assert len(drift) == 1 and drift[0].state == DeliveryState.SENT
    (post,) = receiver.accepted()
    assert post.doc["kind"] == "drift" and post.doc["numbers"] == [number(1)]
    assert post.doc["state"] == "UNLINKED"


@pytest.mark.parametrize("kind", list(AlertKind))
def test_every_kind_says_what_when_why_and_what_next(kind: AlertKind) -> None:
    claim = delivery.Claimed(
        id=7,
        attempts=1,
        kind=kind.value,
        provider="telnyx",
        number="+12025550100",
        campaign_id="CAMPX",
        payload={"reason": "because", "state": "PROCESSING", "since": T0.isoformat()},
        is_digest=False,
        created_at=T0,
        delivered_to=(),
    )
    message = messages.render(claim)
    assert "+12025550100" in message.title and "CAMPX" in message.title
    for needle in ("+12025550100", "CAMPX", "because", T0.isoformat(), "What to do:"):
        assert needle in message.text
    assert message.doc["kind"] == kind.value and message.doc["numbers"] == ["+12025550100"]
    assert message.doc["provider"] == "telnyx" and message.doc["campaign_id"] == "CAMPX"


def test_only_one_delivery_run_at_a_time_on_postgres(pg_url: str, receiver: Receiver) -> None:
    from models.db import make_engine
    from worker.alerting import RUN_LOCK_ID

    engine = make_engine(pg_url)
    try:
        fail_links(engine, [number(1)])
        with engine.connect() as other:  # another worker's run holds the lock
            other.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": RUN_LOCK_ID})
            assert deliver_alerts(engine, [receiver.url()]).sent == 0
            other.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": RUN_LOCK_ID})
        assert deliver_alerts(engine, [receiver.url()]).sent == 1
    finally:
        engine.dispose()
