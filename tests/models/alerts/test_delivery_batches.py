"""The alert outbox drains in batches: claiming and recording a batch are one statement each
whatever its size (recording: one more for a delivered digest's members), and a row this
worker no longer holds is left alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from models.alerts import delivery
from models.alerts.kinds import AlertKind
from models.alerts.outbox import alert_values
from models.alerts.states import DeliveryState
from models.db import insert_many, transaction
from models.tables import Alert
from tests.statements import counting

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def seed(engine: sa.Engine, n: int) -> None:
    """``n`` due alerts, each of its own campaign (no group is hot)."""
    rows = []
    for i in range(n):
        row = alert_values(AlertKind.LINK_FAILED, key_extra=f"k{i}", now=T0)
        rows.append(
            row | {"provider": "plivo", "campaign_id": f"C{i}", "number": f"+1202555{i:04d}"}
        )
    with transaction(engine) as s:
        insert_many(s, Alert, rows)


def writes(statements: list[str]) -> list[str]:
    return [q.split()[0] for q in statements if not q.startswith(("BEGIN", "SAVEPOINT"))]


@pytest.mark.parametrize("size", [3, 30])
def test_a_batch_is_claimed_and_recorded_in_one_statement_each(
    engine: sa.Engine, size: int
) -> None:
    seed(engine, size)
    now = T0 + timedelta(seconds=1)
    with transaction(engine) as s, counting(engine) as sent:
        claimed = delivery.claim_due(s, now=now, limit=100)
    assert writes(sent) == ["UPDATE"]
    assert len(claimed) == size and all(c.attempts == 1 for c in claimed)

    outcomes = []
    for i, claim in enumerate(claimed):
        if i % 3 == 0:
            outcomes.append(
                delivery.delivered(claim, delivered_to=["fp1"], logged_only=False, now=now)
            )
        elif i % 3 == 1:
            outcomes.append(
                delivery.failed(claim, error="503", delivered_to=[], now=now, max_attempts=1)
            )
        else:
            outcomes.append(delivery.released(claim, now=now))
    with transaction(engine) as s, counting(engine) as sent:
        saved = delivery.record(s, outcomes)
    assert len(writes(sent)) == 1  # UPDATE … FROM (VALUES …) (SQLite: WITH v AS … UPDATE)
    assert saved == {c.id for c in claimed}

    with Session(engine) as s:
        rows = {a.id: a for a in s.exec(select(Alert))}
    for i, claim in enumerate(claimed):
        row = rows[claim.id]
        expected: dict[str, Any] = [
            {"state": DeliveryState.SENT, "attempts": 1, "sent_at": now, "delivered_to": ["fp1"]},
            {"state": DeliveryState.FAILED, "attempts": 1, "last_error": "503", "sent_at": None},
            {"state": DeliveryState.PENDING, "attempts": 0, "next_attempt_at": now},
        ][i % 3]
        assert {k: getattr(row, k) for k in expected} == expected


def test_a_row_no_longer_held_is_not_recorded(engine: sa.Engine) -> None:
    seed(engine, 2)
    now = T0 + timedelta(seconds=1)
    with transaction(engine) as s:
        first, second = delivery.claim_due(s, now=now)
    # The lease of the first ran out and another worker claimed it again.
    with transaction(engine) as s:
        (again,) = delivery.claim_due(
            s, now=now + delivery.SEND_LEASE + timedelta(seconds=1), limit=1
        )
    assert again.id == first.id and again.attempts == 2
    with transaction(engine) as s:
        saved = delivery.record(
            s,
            [
                delivery.delivered(c, delivered_to=["fp"], logged_only=False, now=now)
                for c in (first, second)
            ],
        )
    assert saved == {second.id}
    with Session(engine) as s:
        held = s.exec(select(Alert).where(col(Alert.id) == first.id)).one()
    assert (held.state, held.attempts, held.sent_at) == (DeliveryState.SENDING, 2, None)
