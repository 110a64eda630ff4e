"""Bursts become digests; stuck links are alerted once per generation. Both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
import time_machine
from sqlmodel import Session, col, select

from models.alerts.grouping import GROUP_THRESHOLD
from models.alerts.states import DeliveryState
from models.db import transaction
from models.links import request_link_of, request_unlink_of
from models.statemachine import AlertKind, Direction, Signal, Source
from models.tables import Alert
from tests.worker.alerting.alert_helpers import fail_links, number, observe
from tests.worker.alerting.alert_receiver import Receiver
from worker.alerting import deliver_alerts, detect_stuck

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
STUCK_AFTER = timedelta(hours=72)


def all_alerts(engine: sa.Engine) -> list[Alert]:
    with Session(engine) as s:
        return list(s.exec(select(Alert).order_by(col(Alert.id))).all())


def test_a_bulk_failure_of_1000_numbers_is_a_handful_of_digests(
    engine: sa.Engine, receiver: Receiver
) -> None:
    numbers = [number(i) for i in range(1000)]
    # The failures trickle in over 40 s (polling batches) while delivery runs every 5 s.
    batches = [numbers[:3], numbers[3:300], numbers[300:600], numbers[600:]]
    with time_machine.travel(T0, tick=False) as clock:
        for second in range(0, 180, 5):
            if second % 10 == 0 and batches:
                fail_links(engine, batches.pop(0), now=datetime.now(UTC))
            deliver_alerts(engine, [receiver.url()])
            clock.shift(timedelta(seconds=5))
    posts = receiver.accepted()
    assert len(posts) <= 5, [p.body["title"] for p in posts]
    digests = [p.doc for p in posts if p.doc["digest"]]
    assert digests, "the burst went out as digests"
    for doc in digests:
        assert doc["kind"] == "link_failed" and doc["campaign_id"] == "CAMP1"
        assert doc["provider"] == "plivo" and doc["count"] == len(doc["numbers"])
    title = posts[-1].body["title"]
    assert "link_failed on campaign CAMP1" in title
    body = digests[0]["text"]
    assert "Numbers: " in body and "more." in body and "What to do:" in body
    received = [n for p in posts for n in p.doc["numbers"]]
    assert sorted(received) == sorted(numbers)  # every number, once

    rows = all_alerts(engine)
    members = [a for a in rows if not a.is_digest]
    assert sorted(a.number for a in members if a.number) == sorted(numbers)
    digest_rows = {a.id: a for a in rows if a.is_digest}
    for a in members:
        assert a.state in (DeliveryState.SENT, DeliveryState.GROUPED)
        if a.state == DeliveryState.GROUPED:
            assert digest_rows[a.digest_id].state == DeliveryState.SENT
            assert a.sent_at == digest_rows[a.digest_id].sent_at


def test_a_few_alerts_on_a_campaign_are_not_grouped(engine: sa.Engine, receiver: Receiver) -> None:
    with time_machine.travel(T0, tick=False):
        fail_links(engine, [number(i) for i in range(GROUP_THRESHOLD)], now=T0)
        fail_links(engine, [number(100 + i) for i in range(3)], campaign="CAMP2", now=T0)
        deliver_alerts(engine, [receiver.url()])
    assert len(receiver.accepted()) == GROUP_THRESHOLD + 3
    assert not any(p.doc["digest"] for p in receiver.accepted())


def stuck_link(engine: sa.Engine, num: str, at: datetime) -> None:
    with transaction(engine) as s:
        request_link_of(s, "telnyx", num, "CAMPS", source=Source.API, now=at)
        observe(
            s, "telnyx", num, Signal.PENDING, "PENDING_ASSIGNMENT", now=at + timedelta(seconds=1)
        )


def test_a_stuck_link_is_alerted_once_however_often_detection_runs(
    engine: sa.Engine, receiver: Receiver
) -> None:
    with time_machine.travel(T0, tick=False) as clock:
        stuck_link(engine, number(1), T0)
        clock.shift(STUCK_AFTER - timedelta(minutes=1))
        assert detect_stuck(engine, stuck_after=STUCK_AFTER) == 0
        clock.shift(timedelta(minutes=2))
        raised = [detect_stuck(engine, stuck_after=STUCK_AFTER) for _ in range(5)]
        assert raised == [1, 0, 0, 0, 0]
        deliver_alerts(engine, [receiver.url()])
        clock.shift(timedelta(hours=1))
        assert detect_stuck(engine, stuck_after=STUCK_AFTER) == 0
    (alert,) = all_alerts(engine)
    assert alert.kind == AlertKind.STUCK.value and alert.state == DeliveryState.SENT
    (post,) = receiver.accepted()
    doc = post.doc
    assert doc["kind"] == "stuck" and doc["numbers"] == [number(1)]
    assert doc["since"] == (T0 + timedelta(seconds=1)).isoformat()
    assert "PROCESSING since" in doc["reason"] and "dlcsync reconcile" in doc["next_steps"]


def test_a_new_generation_that_gets_stuck_again_is_alerted_again(engine: sa.Engine) -> None:
    with time_machine.travel(T0, tick=False) as clock:
        stuck_link(engine, number(1), T0)
        clock.shift(STUCK_AFTER + timedelta(minutes=1))
        assert detect_stuck(engine, stuck_after=STUCK_AFTER) == 1
        now = datetime.now(UTC)
        with transaction(engine) as s:
            request_unlink_of(s, "telnyx", number(1), source=Source.API, now=now)
            observe(
                s,
                "telnyx",
                number(1),
                Signal.PENDING,
                "PENDING_UNASSIGNMENT",
                now=now + timedelta(seconds=1),
                direction=Direction.UNLINK,
            )
        clock.shift(timedelta(hours=1))
        assert detect_stuck(engine, stuck_after=STUCK_AFTER) == 0  # not stuck yet
        clock.shift(STUCK_AFTER)
        assert detect_stuck(engine, stuck_after=STUCK_AFTER) == 1
        assert detect_stuck(engine, stuck_after=STUCK_AFTER) == 0
    stuck = all_alerts(engine)
    assert [(a.generation, a.payload["state"]) for a in stuck] == [
        (1, "PROCESSING"),
        (2, "UNLINK_PROCESSING"),
    ]


def test_links_in_final_or_requested_states_are_never_stuck(engine: sa.Engine) -> None:
    with time_machine.travel(T0, tick=False) as clock:
        fail_links(engine, [number(1)], now=T0)
        with transaction(engine) as s:
            request_link_of(s, "plivo", number(2), "CAMP1", source=Source.API, now=T0)
        clock.shift(STUCK_AFTER * 2)
        assert detect_stuck(engine, stuck_after=STUCK_AFTER) == 0


def test_stuck_detection_works_in_batches(engine: sa.Engine) -> None:
    with time_machine.travel(T0, tick=False) as clock:
        for i in range(7):
            stuck_link(engine, number(i), T0)
        clock.shift(STUCK_AFTER * 2)
        assert detect_stuck(engine, stuck_after=STUCK_AFTER, batch=3) == 7
        assert detect_stuck(engine, stuck_after=STUCK_AFTER, batch=3) == 0
