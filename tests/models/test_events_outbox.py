"""The outbound event outbox: one row per audit row, fan-out, per-number order, outcomes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import select

from models import events
from models.batch import Entry, link_numbers, unlink_numbers
from models.db import transaction
from models.links import apply_observation, request_link_of, request_unlink_of
from models.statemachine import Observation, Signal, Source
from models.tables import EventDelivery, EventOutbox, LinkEvent

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
A, B = "+12025550101", "+12025550102"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _history(engine: sa.Engine, number: str) -> None:
    """Three audit rows for ``number``: requested, processing, completed."""
    with transaction(engine) as s:
        request_link_of(s, "telnyx", number, "C1", source=Source.API, now=at(0))
    for t, signal in ((1, Signal.PENDING), (2, Signal.LINKED)):
        with transaction(engine) as s:
            o = Observation(Source.WEBHOOK, str(signal), at(t), signal)
            apply_observation(s, "telnyx", number, o, now=at(t))


def _deliveries(engine: sa.Engine) -> list[EventDelivery]:
    with transaction(engine) as s:
        return list(s.exec(select(EventDelivery).order_by(EventDelivery.id)).all())


def test_every_audit_row_gets_an_outbox_row_in_its_transaction(engine: sa.Engine) -> None:
    _history(engine, A)
    with transaction(engine) as s:
        request_unlink_of(s, "telnyx", A, source=Source.CLI, now=at(3))
    try:  # a rolled-back change leaves neither an audit row nor an event
        with transaction(engine) as s:
            request_link_of(s, "telnyx", B, "C1", source=Source.API, now=at(4))
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with transaction(engine) as s:
        audit = [e.id for e in s.exec(select(LinkEvent).order_by(LinkEvent.id)).all()]
        outbox = [o.event_id for o in s.exec(select(EventOutbox).order_by(EventOutbox.id)).all()]
    assert len(audit) == 4
    assert outbox == audit


def _audit_and_outbox(engine: sa.Engine) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    with engine.connect() as conn:
        audit = conn.execute(sa.text("SELECT id, link_id FROM link_events ORDER BY id")).all()
        outbox = conn.execute(sa.text("SELECT event_id, link_id FROM event_outbox ORDER BY id"))
        return [tuple(r) for r in audit], [tuple(r) for r in outbox.all()]


def test_a_multi_row_audit_insert_gets_one_outbox_row_per_audit_row_in_order(
    engine: sa.Engine,
) -> None:
    """Batches write their audit rows in one INSERT each (PostgreSQL: one trigger call per
    statement); the outbox still holds one row per audit row, numbered in audit id order."""
    numbers = [Entry(f"+1202555{i:04d}") for i in range(300)]
    with transaction(engine) as s:
        link_numbers(s, "plivo", "C1", numbers, source=Source.CLI, now=at(0))
    with transaction(engine) as s:  # every link changes: the compare-and-set path's INSERT
        link_numbers(s, "plivo", "C2", numbers[::-1], source=Source.CLI, now=at(1))
    with transaction(engine) as s:
        unlink_numbers(s, "plivo", numbers[:7], source=Source.CLI, now=at(2))
    audit, outbox = _audit_and_outbox(engine)
    assert len(audit) == 607
    assert outbox == audit


def test_the_postgres_outbox_trigger_runs_once_per_statement(pg_engine: sa.Engine) -> None:
    with pg_engine.connect() as conn:
        orientation = conn.execute(
            sa.text(
                "SELECT action_orientation FROM information_schema.triggers"
                " WHERE trigger_name = 'link_events_outbox'"
            )
        ).scalar_one()
    assert orientation == "STATEMENT"


def test_fan_out_makes_one_delivery_per_url_and_empties_the_outbox(engine: sa.Engine) -> None:
    _history(engine, A)
    with transaction(engine) as s:
        assert events.fan_out(s, ["u1", "u2"], now=at(5), limit=2) == 2
    with transaction(engine) as s:
        assert events.fan_out(s, ["u1", "u2"], now=at(5)) == 1
        assert events.fan_out(s, ["u1", "u2"], now=at(5)) == 0
        assert s.exec(select(EventOutbox)).all() == []
    rows = _deliveries(engine)
    assert sorted((d.url_key, d.event_id) for d in rows) == [
        (u, e) for u in ("u1", "u2") for e in (1, 2, 3)
    ]


def test_no_urls_drops_the_outbox(engine: sa.Engine) -> None:
    _history(engine, A)
    with transaction(engine) as s:
        assert events.fan_out(s, [], now=at(5)) == 3
    assert _deliveries(engine) == []


def test_claims_only_the_earliest_open_event_of_each_number(engine: sa.Engine) -> None:
    _history(engine, A)
    _history(engine, B)
    with transaction(engine) as s:
        events.fan_out(s, ["u1"], now=at(5))
    with transaction(engine) as s:
        first = events.claim_due(s, "u1", now=at(5))
    by_number = {c.body: c for c in first}
    assert len(first) == 2 and len(by_number) == 2  # one per number: A's and B's first
    assert [c.event_id for c in first] == [1, 4]
    with transaction(engine) as s:  # nothing more while those are open
        assert events.claim_due(s, "u1", now=at(5)) == []
    with transaction(engine) as s:
        events.finish(s, [events.Outcome(first[0], status=200)], now=at(6))
        # B's first failed with a 503: B's later events wait for its retry.
        events.finish(
            s,
            [events.Outcome(first[1], status=503, error="HTTP 503")],
            now=at(6),
            rng=random.Random(1),
        )
    with transaction(engine) as s:
        second = events.claim_due(s, "u1", now=at(6))
    assert [c.event_id for c in second] == [2]
    with transaction(engine) as s:
        events.finish(s, [events.Outcome(second[0], status=204)], now=at(7))
    with transaction(engine) as s:  # after the backoff B's first comes back (not its second)
        later = events.claim_due(s, "u1", now=at(3600))
    assert [c.event_id for c in later] == [3, 4]
    assert later[1].attempts == 2
    assert later[1].body == first[1].body


def test_body_is_the_designed_document() -> None:
    e = LinkEvent(
        id=7,
        link_id=1,
        provider="plivo",
        number=A,
        campaign_id="C9",
        generation=2,
        from_state="PROCESSING",
        to_state="FAILED",
        source="poll",
        reason="bad number",
        recorded_at=T0,
    )
    import json

    doc = json.loads(events.body(e))
    assert doc == {
        "type": "link.state_changed",
        "timestamp": T0.isoformat(),
        "data": {
            "event_id": 7,
            "provider": "plivo",
            "number": A,
            "campaign_id": "C9",
            "from_state": "PROCESSING",
            "to_state": "FAILED",
            "generation": 2,
            "source": "poll",
            "reason": "bad number",
            "recorded_at": T0.isoformat(),
        },
    }
    assert events.body(e) == events.body(e)


def _one_claim(engine: sa.Engine, now: datetime) -> events.Claimed:
    with transaction(engine) as s:
        (claim,) = events.claim_due(s, "u1", now=now, limit=1)
    return claim


def test_outcomes_reject_retry_with_retry_after_and_give_up_after_a_day(
    engine: sa.Engine,
) -> None:
    with transaction(engine) as s:
        request_link_of(s, "telnyx", A, "C1", source=Source.API, now=at(0))
        events.fan_out(s, ["u1"], now=at(0))
    claim = _one_claim(engine, at(0))
    with transaction(engine) as s:
        counts = events.finish(
            s,
            [events.Outcome(claim, status=429, error="HTTP 429", retry_after=timedelta(minutes=7))],
            now=at(1),
        )
    assert counts == {"retry": 1}
    (d,) = _deliveries(engine)
    assert d.state == events.PENDING and d.next_attempt_at == at(1) + timedelta(minutes=7)
    # Still failing a day later: given up.
    claim = _one_claim(engine, at(86400))
    with transaction(engine) as s:
        counts = events.finish(s, [events.Outcome(claim, status=500, error="x")], now=at(86401))
    assert counts == {"failed": 1}
    (d,) = _deliveries(engine)
    assert d.state == events.FAILED and d.attempts == 2 and d.next_attempt_at is None
    # A redelivery starts it over; a 404 then rejects it for good.
    with transaction(engine) as s:
        assert events.redeliver(s, since=at(0), url_keys=["u1"], now=at(90000)) == 1
    claim = _one_claim(engine, at(90000))
    with transaction(engine) as s:
        counts = events.finish(
            s,
            [events.Outcome(claim, status=404, error="HTTP 404", retryable=False)],
            now=at(90001),
        )
    assert counts == {"rejected": 1}
    assert _deliveries(engine)[0].state == events.REJECTED


def test_a_lost_claim_is_not_overwritten(engine: sa.Engine) -> None:
    with transaction(engine) as s:
        request_link_of(s, "telnyx", A, "C1", source=Source.API, now=at(0))
        events.fan_out(s, ["u1"], now=at(0))
    stale = _one_claim(engine, at(0))
    fresh = _one_claim(engine, at(0) + events.SEND_LEASE + timedelta(seconds=1))  # lease ran out
    with transaction(engine) as s:
        events.finish(s, [events.Outcome(stale, status=503, error="late")], now=at(100))
        events.finish(s, [events.Outcome(fresh, status=200)], now=at(100))
    (d,) = _deliveries(engine)
    assert d.state == events.DELIVERED and d.attempts == 2


def test_redeliver_adds_deliveries_for_a_new_url_and_reports_oldest(engine: sa.Engine) -> None:
    _history(engine, A)
    with transaction(engine) as s:
        events.fan_out(s, ["u1"], now=at(5))
        assert events.oldest_undelivered(s) == at(0)
        n = events.redeliver(s, since=at(1), url_keys=["u2"], now=at(10))
    assert n == 2
    assert sorted(d.event_id for d in _deliveries(engine) if d.url_key == "u2") == [2, 3]


def test_retention_deletes_only_finished_deliveries_past_the_cutoff(engine: sa.Engine) -> None:
    _history(engine, A)
    with transaction(engine) as s:
        events.fan_out(s, ["u1"], now=at(5))
    first, second, third = (d.id for d in _deliveries(engine))
    with transaction(engine) as s:  # delivered, rejected, still open
        for delivery_id, state in ((first, events.DELIVERED), (second, events.REJECTED)):
            s.execute(
                sa.update(EventDelivery)
                .where(EventDelivery.id == delivery_id)  # type: ignore[arg-type]
                .values(state=state)
            )
    month = timedelta(days=30)
    with transaction(engine) as s:  # not old enough yet
        assert events.delete_finished(s, older_than=month, now=at(5) + month / 2) == 0
    with transaction(engine) as s:
        assert events.delete_finished(s, older_than=month, now=at(5) + 2 * month, limit=1) == 1
    with transaction(engine) as s:
        assert events.delete_finished(s, older_than=month, now=at(5) + 2 * month) == 1
    assert [(d.id, d.state) for d in _deliveries(engine)] == [(third, events.PENDING)]
