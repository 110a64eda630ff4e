"""History and as-of answers against a hand-computed timeline with stale and duplicates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from models.db import transaction
from models.history import events, link_history, state_as_of
from models.links import apply_observation, request_link_of, request_unlink_of
from models.statemachine import Direction, Observation, Signal, Source

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
N1, N2 = "+12025550001", "+12025550002"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def webhook(signal: Signal, minute: float, **kw) -> Observation:
    return Observation(Source.WEBHOOK, str(signal), at(minute), signal, **kw)


def build_timeline(engine: sa.Engine) -> None:
    steps = [
        (0, lambda s: request_link_of(s, "telnyx", N1, "C1", source=Source.API, now=at(0))),
        (1, lambda s: apply_observation(s, "telnyx", N1, webhook(Signal.PENDING, 1), now=at(1))),
        # A delivery observed at minute 3 ...
        (3, lambda s: apply_observation(s, "telnyx", N1, webhook(Signal.LINKED, 3), now=at(3))),
        # ... its duplicate, and a stale PENDING observed at minute 2 arriving late.
        (4, lambda s: apply_observation(s, "telnyx", N1, webhook(Signal.LINKED, 3), now=at(4))),
        (5, lambda s: apply_observation(s, "telnyx", N1, webhook(Signal.PENDING, 2), now=at(5))),
        (10, lambda s: request_unlink_of(s, "telnyx", N1, source=Source.CLI, now=at(10))),
        (
            11,
            lambda s: apply_observation(
                s,
                "telnyx",
                N1,
                webhook(Signal.NOT_LINKED, 11, direction=Direction.UNLINK),
                now=at(11),
            ),
        ),
        (12, lambda s: request_link_of(s, "plivo", N2, "C9", source=Source.API, now=at(12))),
    ]
    for _minute, step in steps:
        with transaction(engine) as s:
            step(s)


def test_history_oldest_first_without_stale_or_duplicates(engine: sa.Engine) -> None:
    build_timeline(engine)
    with transaction(engine) as s:
        rows = link_history(s, "telnyx", N1)
        assert [(r.from_state, r.to_state, r.generation, r.recorded_at) for r in rows] == [
            (None, "LINK_REQUESTED", 1, at(0)),
            ("LINK_REQUESTED", "PROCESSING", 1, at(1)),
            ("PROCESSING", "COMPLETED", 1, at(3)),
            ("COMPLETED", "UNLINK_REQUESTED", 2, at(10)),
            ("UNLINK_REQUESTED", "UNLINKED", 2, at(11)),
        ]
        assert [r.source for r in rows] == ["api", "webhook", "webhook", "cli", "webhook"]
        assert link_history(s, "telnyx", "+12025559999") == []


def test_state_as_of(engine: sa.Engine) -> None:
    build_timeline(engine)
    expected = {
        -1: None,
        0: "LINK_REQUESTED",
        0.5: "LINK_REQUESTED",
        2: "PROCESSING",
        3: "COMPLETED",
        5.5: "COMPLETED",  # the stale and duplicate deliveries changed nothing
        10.5: "UNLINK_REQUESTED",
        60: "UNLINKED",
    }
    with transaction(engine) as s:
        for minute, state in expected.items():
            row = state_as_of(s, "telnyx", N1, at(minute))
            assert (row.to_state if row else None) == state, minute


def test_events_filters_and_keyset_pages(engine: sa.Engine) -> None:
    build_timeline(engine)
    with transaction(engine) as s:
        assert [e.number for e in events(s, provider="plivo")] == [N2]
        assert [e.to_state for e in events(s, campaign_id="C1", since=at(2), until=at(11))] == [
            "COMPLETED",
            "UNLINK_REQUESTED",
        ]
        assert len(events(s, state="LINK_REQUESTED")) == 2
        first = events(s, limit=4)
        rest = events(s, after_id=first[-1].id or 0, limit=4)
        assert len(first) == 4 and len(rest) == 2
        assert {e.id for e in first}.isdisjoint({e.id for e in rest})
