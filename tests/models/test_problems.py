"""``models.problems``: one definition of a stuck link, shared by the dashboard and ``dlcsync
status`` (problem_links, problem_counts) and the stuck alerts (detect_stuck)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from models.alerts.stuck import detect_stuck
from models.db import transaction
from models.links import request_link_of, request_unlink_of
from models.problems import problem_counts, problem_links
from models.statemachine import AlertKind, Direction, Signal, Source
from models.tables import Alert
from tests.worker.alerting.alert_helpers import observe

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
STUCK_AFTER = timedelta(hours=72)


def in_flight(engine: sa.Engine, num: str, since: datetime, *, unlink: bool = False) -> None:
    """A link the provider has been working on since ``since`` (an unlink when ``unlink``)."""
    with transaction(engine) as s:
        request_link_of(s, "telnyx", num, "C1", source=Source.API, now=since - timedelta(hours=2))
        if unlink:
            observe(s, "telnyx", num, Signal.LINKED, "ASSIGNED", now=since - timedelta(hours=1))
            request_unlink_of(s, "telnyx", num, source=Source.API, now=since - timedelta(minutes=1))
        observe(
            s,
            "telnyx",
            num,
            Signal.PENDING,
            "PENDING",
            now=since,
            direction=Direction.UNLINK if unlink else Direction.LINK,
        )


def test_the_dashboard_and_the_stuck_alerts_agree_on_what_is_stuck(engine: sa.Engine) -> None:
    in_flight(engine, "+12025550001", T0 - STUCK_AFTER - timedelta(minutes=1))
    in_flight(engine, "+12025550002", T0 - STUCK_AFTER - timedelta(hours=5), unlink=True)
    in_flight(engine, "+12025550003", T0 - STUCK_AFTER + timedelta(minutes=1))
    with transaction(engine) as s:  # requested long ago, never reached the provider
        request_link_of(
            s, "telnyx", "+12025550004", "C1", source=Source.API, now=T0 - 2 * STUCK_AFTER
        )
    expected = {"+12025550001", "+12025550002"}

    with Session(engine) as s:
        problems, total = problem_links(s, stuck_after=STUCK_AFTER, now=T0)
        counts = problem_counts(s, stuck_after=STUCK_AFTER, now=T0)
    assert {p.link.number for p in problems if p.kind == "stuck"} == expected
    assert total == counts["stuck"] == len(expected)

    with transaction(engine) as s:
        assert detect_stuck(s, stuck_after=STUCK_AFTER, now=T0) == len(expected)
    with Session(engine) as s:
        alerts = s.exec(select(Alert)).all()
    assert {a.number for a in alerts} == expected
    assert {a.kind for a in alerts} == {AlertKind.STUCK.value}
