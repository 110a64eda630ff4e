"""``models.db``'s set-based helpers: what the rows say is what is stored, on both databases
(PostgreSQL sends them as arrays, a column with one value for all rows as one parameter)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from models.db import insert_many, pairs_in, transaction, update_many
from models.links import new_link_values
from models.tables import Link
from tests.statements import counting

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def rows(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        row = new_link_values("plivo", f"+1202555{i:04d}", "C1", T0)
        # Some columns vary, some hold one value for all rows, some are None in part.
        row["next_poll_at"] = None if i % 3 == 0 else T0 + timedelta(seconds=i)
        row["poll_attempts"] = i
        out.append(row)
    return out


def stored(engine: sa.Engine) -> list[tuple[Any, ...]]:
    with Session(engine) as s:
        return [
            (link.number, link.campaign_id, link.next_poll_at, link.poll_attempts, link.state)
            for link in s.exec(select(Link).order_by(col(Link.number)))
        ]


def test_insert_many_and_update_many_store_each_rows_values(engine: sa.Engine) -> None:
    given = rows(7)
    with transaction(engine) as s, counting(engine) as sent:
        inserted = insert_many(s, Link, given, ignore_conflicts=True, returning=("id", "number"))
    assert len([q for q in sent if q.startswith("INSERT")]) == 1
    assert sorted(str(r.number) for r in inserted) == [r["number"] for r in given]
    assert stored(engine) == [
        (r["number"], "C1", r["next_poll_at"], r["poll_attempts"], "LINK_REQUESTED") for r in given
    ]

    ids = {str(r.number): int(r.id) for r in inserted}
    changes = [
        {
            "id": ids[r["number"]],
            "was_state": "LINK_REQUESTED" if i != 2 else "LINKED",  # this one loses its CAS
            "state": "PROCESSING",
            "campaign_id": f"C{i}",
        }
        for i, r in enumerate(given)
    ]
    with transaction(engine) as s:
        won = update_many(s, Link, changes, assign=("state", "campaign_id"), match=("state",))
    assert won == {c["id"] for i, c in enumerate(changes) if i != 2}
    after = stored(engine)
    assert [(a[1], a[4]) for a in after] == [
        ("C1", "LINK_REQUESTED") if i == 2 else (f"C{i}", "PROCESSING") for i in range(7)
    ]


def test_insert_many_refuses_a_value_too_long_for_its_column(pg_url: str) -> None:
    """Arrays of text, not varchar(n): a cast to varchar(32) would silently truncate."""
    from models.db import make_engine

    engine = make_engine(pg_url)
    row = new_link_values("p" * 40, "+12025550100", "C1", T0)
    with pytest.raises(sa.exc.DataError), transaction(engine) as s:
        insert_many(s, Link, [row, {**row, "number": "+12025550101"}])
    engine.dispose()


def test_json_values_round_trip_whatever_their_shape(engine: sa.Engine) -> None:
    """Lists inside JSON are values, not another dimension of the array they travel in."""
    from models.alerts.kinds import AlertKind
    from models.alerts.outbox import alert_values
    from models.tables import Alert

    shapes: list[Any] = [["a", "b"], [], None, {"k": [1, [2]]}, ["x"]]
    given = [
        alert_values(AlertKind.STUCK, key_extra=f"j{i}", now=T0)
        | {"payload": {"v": shape}, "delivered_to": shape if isinstance(shape, list) else None}
        for i, shape in enumerate(shapes)
    ]
    with transaction(engine) as s:
        insert_many(s, Alert, given)
    with Session(engine) as s:
        stored_rows = s.exec(select(Alert).order_by(col(Alert.id))).all()
        assert [(a.payload, a.delivered_to) for a in stored_rows] == [
            (g["payload"], g["delivered_to"]) for g in given
        ]
        ids = [a.id for a in stored_rows]
    changes = [
        {"id": i, "delivered_to": [str(i), [i]] if i % 2 else None, "state": "sending"} for i in ids
    ]
    with transaction(engine) as s:
        update_many(s, Alert, changes, assign=("delivered_to", "state"))
    with Session(engine) as s:
        assert [a.delivered_to for a in s.exec(select(Alert).order_by(col(Alert.id)))] == [
            c["delivered_to"] for c in changes
        ]


@pytest.mark.parametrize("wanted", [0, 1, 5])
def test_pairs_in_matches_exactly_the_pairs_asked_for(engine: sa.Engine, wanted: int) -> None:
    """Never the cross product of the pairs' halves: (plivo, A) and (telnyx, B) do not match
    (plivo, B), on PostgreSQL's per-provider arrays as on SQLite's row-value list."""
    with transaction(engine) as s:
        insert_many(
            s,
            Link,
            [
                new_link_values(p, f"+1202555{i:04d}", "C1", T0)
                for p in ("plivo", "telnyx")
                for i in range(8)
            ],
        )
    pairs = [("plivo" if i % 2 else "telnyx", f"+1202555{i:04d}") for i in range(wanted)]
    table = Link.__table__  # type: ignore[attr-defined]
    with Session(engine) as s:
        found = s.execute(
            sa.select(table.c.provider, table.c.number).where(
                pairs_in(s, table.c.provider, table.c.number, [*pairs, *pairs])
            )
        ).all()
    assert sorted(tuple(r) for r in found) == sorted(pairs)
