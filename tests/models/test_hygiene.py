"""Campaign hygiene alerts, with the clock moved by time-machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
import time_machine
from sqlmodel import select

from models import hygiene
from models.db import transaction
from models.links import apply_observation, request_link_of, request_unlink_of
from models.statemachine import AlertKind, Observation, Signal, Source
from models.tables import Alert

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _alerts(engine: sa.Engine, kind: AlertKind) -> list[Alert]:
    with transaction(engine) as s:
        return list(s.exec(select(Alert).where(Alert.kind == kind.value).order_by(Alert.id)).all())


def _observe(engine: sa.Engine, number: str, signal: Signal, reason: str | None = None) -> None:
    with transaction(engine) as s:
        o = Observation(Source.POLL, str(signal), datetime.now(UTC), signal, reason=reason)
        apply_observation(s, "telnyx", number, o)


def _check(engine: sa.Engine) -> int:
    with transaction(engine) as s:
        return hygiene.detect_empty(s) + hygiene.detect_failing(s)


def test_campaign_empty_once_per_period(engine: sa.Engine) -> None:
    n = "+12025550101"
    with time_machine.travel(T0, tick=False) as clock:
        with transaction(engine) as s:
            request_link_of(s, "telnyx", n, "C1", source=Source.API)
        _observe(engine, n, Signal.LINKED)
        clock.move_to(T0 + DAY)
        with transaction(engine) as s:
            request_unlink_of(s, "telnyx", n, source=Source.API)
        clock.move_to(T0 + DAY + timedelta(hours=1))
        _observe(engine, n, Signal.NOT_LINKED)
        emptied = T0 + DAY + timedelta(hours=1)
        clock.move_to(emptied + 13 * DAY)
        assert _check(engine) == 0  # 13 days: not yet
        clock.move_to(emptied + 14 * DAY)
        assert _check(engine) == 1
        assert _check(engine) == 0  # once per period
        (alert,) = _alerts(engine, AlertKind.CAMPAIGN_EMPTY)
        assert alert.campaign_id == "C1" and alert.provider == "telnyx"
        assert "15 days" in alert.payload["reason"] and "60 days" in alert.payload["reason"]
        # Refilled and emptied again: a new period, a new alert after 14 more days.
        with transaction(engine) as s:
            request_link_of(s, "telnyx", n, "C1", source=Source.API)
        _observe(engine, n, Signal.LINKED)
        assert _check(engine) == 0
        with transaction(engine) as s:
            request_unlink_of(s, "telnyx", n, source=Source.API)
        clock.shift(timedelta(minutes=1))
        _observe(engine, n, Signal.NOT_LINKED)
        clock.shift(14 * DAY)
        assert _check(engine) == 1
    assert len(_alerts(engine, AlertKind.CAMPAIGN_EMPTY)) == 2


def test_campaign_failing_once_with_the_common_reasons(engine: sa.Engine) -> None:
    with time_machine.travel(T0, tick=False) as clock:
        numbers = [f"+1202555{i:04d}" for i in range(20)]
        for n in numbers:
            with transaction(engine) as s:
                request_link_of(s, "telnyx", n, "C2", source=Source.API)
        clock.shift(timedelta(minutes=1))
        for i, n in enumerate(numbers):
            if i < 10:
                _observe(engine, n, Signal.LINKED)
            else:
                _observe(engine, n, Signal.FAILED, "number not in account" if i % 3 else "other")
        assert _check(engine) == 0  # 10 of 20 failed: not more than half
        extra = "+12025559999"
        with transaction(engine) as s:
            request_link_of(s, "telnyx", extra, "C2", source=Source.API)
        clock.shift(timedelta(minutes=1))
        _observe(engine, extra, Signal.FAILED, "number not in account")
        assert _check(engine) == 1  # 11 of the last 20
        assert _check(engine) == 0
    (alert,) = _alerts(engine, AlertKind.CAMPAIGN_FAILING)
    assert alert.payload["failed"] == 11
    assert alert.payload["reasons"] == {"number not in account": 8, "other": 3}
    assert alert.payload["reason"].startswith("11 of the last 20 link requests failed")


def test_campaign_failing_again_next_week_while_failures_go_on(engine: sa.Engine) -> None:
    with time_machine.travel(T0, tick=False) as clock:
        numbers = [f"+1202556{i:04d}" for i in range(12)]
        for n in numbers:
            with transaction(engine) as s:
                request_link_of(s, "telnyx", n, "C3", source=Source.API)
        clock.shift(timedelta(minutes=1))
        for n in numbers:
            _observe(engine, n, Signal.FAILED, "campaign suspended")
        assert _check(engine) == 1
        clock.shift(timedelta(hours=6))  # still Sunday of the same ISO week, failures recent
        assert _check(engine) == 0
        clock.shift(9 * DAY)
        assert _check(engine) == 0  # no failure in the last day: nothing new to say
        late = "+12025569999"
        with transaction(engine) as s:
            request_link_of(s, "telnyx", late, "C3", source=Source.API)
        clock.shift(timedelta(minutes=1))
        _observe(engine, late, Signal.FAILED, "campaign suspended")
        assert _check(engine) == 1
        assert _check(engine) == 0
    assert len(_alerts(engine, AlertKind.CAMPAIGN_FAILING)) == 2
