"""Per-carrier mapping status: stored on the link, history rows, one alert per carrier."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import select

from models import mapping
from models.db import transaction
from models.links import apply_observation, load, request_link_of
from models.statemachine import AlertKind, Observation, Signal, Source, Verdict
from models.tables import Alert, LinkEvent, MappingChange

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
N = "+12025550101"


def poll(engine: sa.Engine, t: int, **carriers: str) -> Verdict:
    with transaction(engine) as s:
        link = load(s, "telnyx", N)
        assert link is not None
        o = Observation(
            Source.POLL, "ASSIGNED", T0 + timedelta(seconds=t), Signal.LINKED,
            generation=link.generation, carrier_mapping=tuple(sorted(carriers.items())),
        )  # fmt: skip
        return apply_observation(s, "telnyx", N, o, now=T0 + timedelta(seconds=t)).verdict


def test_mapping_changes_are_history_not_audit_rows_and_alert_once(engine: sa.Engine) -> None:
    with transaction(engine) as s:
        request_link_of(s, "telnyx", N, "C1", source=Source.API, now=T0)
    assert poll(engine, 1, tmobile="PENDING", non_tmobile="ADDED") is Verdict.APPLIED
    assert poll(engine, 2, tmobile="FAILED", non_tmobile="ADDED") is Verdict.DUPLICATE
    assert poll(engine, 3, tmobile="FAILED", non_tmobile="ADDED") is Verdict.DUPLICATE
    assert poll(engine, 4, tmobile="FAILED", non_tmobile="ADDED", att="FAILED") is (
        Verdict.DUPLICATE
    )
    with transaction(engine) as s:
        link = load(s, "telnyx", N)
        assert link is not None
        assert link.carrier_mapping == {
            "tmobile": "FAILED",
            "non_tmobile": "ADDED",
            "att": "FAILED",
        }
        changes = [
            (c.carrier, c.from_status, c.to_status) for c in mapping.history(s, [link.id or 0])
        ]
        audit = [e.to_state for e in s.exec(select(LinkEvent)).all()]
        alerts = s.exec(select(Alert).where(Alert.kind == AlertKind.CARRIER_MAPPING_FAILED)).all()
    assert changes == [
        ("non_tmobile", None, "ADDED"),
        ("tmobile", None, "PENDING"),
        ("tmobile", "PENDING", "FAILED"),
        ("att", None, "FAILED"),
    ]
    assert audit == ["LINK_REQUESTED", "COMPLETED"]  # one audit row per state change only
    assert sorted(a.payload["carrier"] for a in alerts) == ["att", "tmobile"]
    assert "T-Mobile mapping FAILED" in next(
        a.payload["reason"] for a in alerts if a.payload["carrier"] == "tmobile"
    )


def test_a_new_request_starts_the_mapping_over(engine: sa.Engine) -> None:
    with transaction(engine) as s:
        request_link_of(s, "telnyx", N, "C1", source=Source.API, now=T0)
    poll(engine, 1, tmobile="FAILED")
    with transaction(engine) as s:
        request_link_of(s, "telnyx", N, "C2", source=Source.API, now=T0 + timedelta(seconds=5))
        link = load(s, "telnyx", N)
        assert link is not None and link.carrier_mapping is None
    poll(engine, 6, tmobile="FAILED")  # generation 2 fails too: a second alert
    with transaction(engine) as s:
        n_alerts = len(s.exec(select(Alert).where(Alert.kind == "carrier_mapping_failed")).all())
        n_changes = len(s.exec(select(MappingChange)).all())
    assert (n_alerts, n_changes) == (2, 2)
