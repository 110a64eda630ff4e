"""Saving decisions: requests, observations, audit rows and alerts in one transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from models.db import transaction
from models.links import apply_observation, load, request_link_of, request_unlink_of
from models.statemachine import Direction, Observation, Signal, Source, State, Verdict
from models.tables import Alert, LinkEvent

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NUMBER = "+12025550123"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def obs(signal: Signal | None, t: float, *, source: Source = Source.WEBHOOK, **kw) -> Observation:
    return Observation(
        source=source,
        provider_status=str(kw.pop("status", signal)),
        observed_at=at(t),
        signal=signal,
        **kw,
    )


def events(session: Session) -> list[LinkEvent]:
    return list(session.exec(select(LinkEvent).order_by(LinkEvent.id)).all())


def test_link_request_then_callbacks_write_one_audit_row_per_change(engine: sa.Engine) -> None:
    with transaction(engine) as s:
        r = request_link_of(s, "telnyx", NUMBER, "C1", source=Source.API, now=at(0))
        assert r.accepted and r.changed
    with transaction(engine) as s:
        d = apply_observation(s, "telnyx", NUMBER, obs(Signal.PENDING, 1), now=at(1))
        assert d.verdict is Verdict.APPLIED and d.to_state is State.PROCESSING
    with transaction(engine) as s:
        d = apply_observation(
            s, "telnyx", NUMBER, obs(Signal.LINKED, 2, status="ASSIGNED"), now=at(2)
        )
        assert d.to_state is State.COMPLETED
    with transaction(engine) as s:  # the same callback again
        d = apply_observation(
            s, "telnyx", NUMBER, obs(Signal.LINKED, 2, status="ASSIGNED"), now=at(3)
        )
        assert d.verdict is Verdict.DUPLICATE
    with transaction(engine) as s:
        link = load(s, "telnyx", NUMBER)
        assert link is not None and link.state == State.COMPLETED and link.generation == 1
        assert link.provider_status == "ASSIGNED"
        rows = events(s)
        assert [(e.from_state, e.to_state, e.source) for e in rows] == [
            (None, "LINK_REQUESTED", "api"),
            ("LINK_REQUESTED", "PROCESSING", "webhook"),
            ("PROCESSING", "COMPLETED", "webhook"),
        ]
        assert all(e.generation == 1 and e.campaign_id == "C1" for e in rows)


def test_repeated_link_request_is_idempotent(engine: sa.Engine) -> None:
    for _ in range(3):
        with transaction(engine) as s:
            request_link_of(s, "plivo", NUMBER, "C1", source=Source.CLI, now=at(0))
    with transaction(engine) as s:
        link = load(s, "plivo", NUMBER)
        assert link is not None and link.generation == 1
        assert len(events(s)) == 1


def test_failed_link_raises_one_alert_and_relink_starts_new_generation(engine: sa.Engine) -> None:
    with transaction(engine) as s:
        request_link_of(s, "plivo", NUMBER, "C1", source=Source.API, now=at(0))
    for _ in range(2):
        with transaction(engine) as s:
            apply_observation(
                s,
                "plivo",
                NUMBER,
                obs(Signal.FAILED, 5, source=Source.POLL, generation=1, reason="carrier said no"),
                now=at(5),
            )
    with transaction(engine) as s:
        link = load(s, "plivo", NUMBER)
        assert link is not None and link.state == State.FAILED
        assert link.failure_reason == "carrier said no"
        alerts = s.exec(select(Alert)).all()
        assert [(a.kind, a.generation, a.number) for a in alerts] == [("link_failed", 1, NUMBER)]
    with transaction(engine) as s:
        r = request_link_of(s, "plivo", NUMBER, "C1", source=Source.API, now=at(10))
        assert r.changed
    with transaction(engine) as s:
        link = load(s, "plivo", NUMBER)
        assert link is not None
        assert (link.state, link.generation, link.failure_reason) == ("LINK_REQUESTED", 2, None)
        # A late callback of generation 1 changes nothing in generation 2.
        d = apply_observation(s, "plivo", NUMBER, obs(Signal.LINKED, 4), now=at(11))
        assert d.verdict is Verdict.IGNORED


def test_unlink_unknown_number_is_refused_and_unlinked_is_noop(engine: sa.Engine) -> None:
    with transaction(engine) as s:
        assert not request_unlink_of(s, "plivo", NUMBER, source=Source.API).accepted
        request_link_of(s, "plivo", NUMBER, "C1", source=Source.API, now=at(0))
    with transaction(engine) as s:
        r = request_unlink_of(s, "plivo", NUMBER, source=Source.API, now=at(1))
        assert r.changed and r.link is not None and r.link.direction == Direction.UNLINK
    with transaction(engine) as s:
        apply_observation(
            s,
            "plivo",
            NUMBER,
            obs(Signal.NOT_LINKED, 2, direction=Direction.UNLINK),
            now=at(2),
        )
    with transaction(engine) as s:
        r = request_unlink_of(s, "plivo", NUMBER, source=Source.API, now=at(3))
        assert r.accepted and not r.changed
        link = load(s, "plivo", NUMBER)
        assert link is not None and (link.state, link.generation) == ("UNLINKED", 2)


def test_drift_from_fresh_poll_is_flagged_and_alerted_once(engine: sa.Engine) -> None:
    with transaction(engine) as s:
        request_link_of(s, "telnyx", NUMBER, "C1", source=Source.API, now=at(0))
        apply_observation(s, "telnyx", NUMBER, obs(Signal.LINKED, 1), now=at(1))
    with transaction(engine) as s:  # a webhook cannot move a terminal state
        d = apply_observation(s, "telnyx", NUMBER, obs(Signal.NOT_LINKED, 2), now=at(2))
        assert d.verdict is Verdict.IGNORED
    with transaction(engine) as s:
        d = apply_observation(
            s,
            "telnyx",
            NUMBER,
            obs(Signal.NOT_LINKED, 3, source=Source.POLL, generation=1),
            now=at(3),
        )
        assert d.verdict is Verdict.APPLIED and d.drift and d.to_state is State.UNLINKED
    with transaction(engine) as s:
        link = load(s, "telnyx", NUMBER)
        assert link is not None and link.drift and link.state == "UNLINKED"
        assert [a.kind for a in s.exec(select(Alert)).all()] == ["drift"]
        assert events(s)[-1].drift


def test_unknown_status_changes_nothing_and_alerts(engine: sa.Engine) -> None:
    with transaction(engine) as s:
        request_link_of(s, "plivo", NUMBER, "C1", source=Source.API, now=at(0))
    for _ in range(2):
        with transaction(engine) as s:
            d = apply_observation(s, "plivo", NUMBER, obs(None, 1, status="MYSTERY"), now=at(1))
            assert d.verdict is Verdict.IGNORED
    with transaction(engine) as s:
        link = load(s, "plivo", NUMBER)
        assert link is not None and link.state == "LINK_REQUESTED"
        assert [a.kind for a in s.exec(select(Alert)).all()] == ["unknown_status"]
        assert len(events(s)) == 1


def test_move_to_another_campaign_records_prior_campaign(engine: sa.Engine) -> None:
    with transaction(engine) as s:
        request_link_of(s, "plivo", NUMBER, "C1", source=Source.API, now=at(0))
        apply_observation(s, "plivo", NUMBER, obs(Signal.LINKED, 1), now=at(1))
    with transaction(engine) as s:
        r = request_link_of(s, "plivo", NUMBER, "C2", source=Source.API, now=at(2))
        assert r.link is not None
        assert (r.link.campaign_id, r.link.prior_campaign_id, r.link.generation) == ("C2", "C1", 2)
