"""Operator batches: set-based (statements do not grow with the batch), same result as the
single-row path of ``models.links``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from models.batch import Entry, link_numbers, unlink_numbers
from models.db import make_engine, transaction
from models.links import request_link_of, request_unlink_of
from models.statemachine import Source
from models.tables import Link, LinkEvent
from tests.statements import counting

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def number(i: int) -> str:
    return f"+1202557{i:04d}"


def entries(n: int, offset: int = 0) -> list[Entry]:
    return [Entry(number(offset + i), line=i + 1) for i in range(n)]


def statements(engine: sa.Engine, fn: Any) -> int:
    with transaction(engine) as s, counting(engine) as sent:
        fn(s)
    return len([q for q in sent if not q.lstrip().upper().startswith(("BEGIN", "SAVEPOINT"))])


def statements_per_step(engine: sa.Engine, n: int, offset: int) -> list[int]:
    """Statements for n numbers: new, asked again, moved to another campaign, unlinked."""
    given = entries(n, offset)

    def link(campaign: str, t: int) -> Any:
        return lambda s: link_numbers(
            s, "plivo", campaign, given, source=Source.CLI, now=T0 + timedelta(seconds=t)
        )

    def unlink(t: int) -> Any:
        return lambda s: unlink_numbers(
            s, "plivo", given, source=Source.CLI, now=T0 + timedelta(seconds=t)
        )

    return [
        statements(engine, step)
        for step in (link("C1", 0), link("C1", 1), link("C2", 2), unlink(3))
    ]


@pytest.mark.parametrize("size", [50, 500])
def test_statements_do_not_grow_with_the_file(engine: sa.Engine, size: int) -> None:
    small = statements_per_step(engine, size // 10, 0)
    large = statements_per_step(engine, size, 5000)
    assert small == large
    # Lock; insert links + audit rows / lock only (asked again) / lock, CAS update, audit rows...
    assert large == [3, 1, 3, 3]
    with Session(engine) as s:
        assert s.exec(select(sa.func.count()).select_from(LinkEvent)).one() == 3 * (
            size + size // 10
        )


def snapshot_tables(engine: sa.Engine) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with Session(engine) as s:
        links = [
            (
                link.number,
                link.campaign_id,
                link.prior_campaign_id,
                link.state,
                link.generation,
                link.direction,
                link.observed_at,
                link.generation_started_at,
                link.next_poll_at,
            )
            for link in s.exec(select(Link).order_by(col(Link.number))).all()
        ]
        events = [
            (
                e.number,
                e.generation,
                e.from_state,
                e.to_state,
                e.campaign_id,
                e.source,
                e.reason,
                e.recorded_at,
            )
            for e in s.exec(
                select(LinkEvent).order_by(col(LinkEvent.number), col(LinkEvent.id))
            ).all()
        ]
    return links, events


def test_a_batch_writes_what_the_single_row_path_writes(db_url: str, tmp_path: Any) -> None:
    """New, idempotent, moved, re-requested after an unlink, and unlinked numbers."""
    import shutil

    single_url = db_url
    if db_url.startswith("sqlite"):
        copy = tmp_path / "single.db"
        shutil.copy(db_url.removeprefix("sqlite:///"), copy)
        single_url = f"sqlite:///{copy}"
    batch_engine = make_engine(db_url)
    steps: list[tuple[str, str | None, list[int], float]] = [
        ("link", "C1", [0, 1, 2, 3], 0),
        ("link", "C1", [0, 1, 4], 1),  # two again (no change), one new
        ("link", "C2", [1, 2, 5], 2),  # two moves, one new
        ("unlink", None, [0, 2, 6], 3),  # 6 is not managed
        ("link", "C1", [0, 3], 4),  # after an unlink request; 3 unchanged
    ]
    batch_results = []
    for op, campaign, ids, t in steps:
        with transaction(batch_engine) as s:
            given = [Entry(number(i)) for i in ids]
            if op == "link":
                assert campaign is not None
                res = link_numbers(
                    s, "plivo", campaign, given, source=Source.API, now=T0 + timedelta(seconds=t)
                )
            else:
                res = unlink_numbers(
                    s, "plivo", given, source=Source.API, now=T0 + timedelta(seconds=t)
                )
        batch_results.append([(r.number, r.accepted, r.changed, r.reason) for r in res])
    batched = snapshot_tables(batch_engine)
    batch_engine.dispose()

    if single_url == db_url:  # PostgreSQL: the same database, emptied
        with make_engine(db_url).begin() as conn:
            conn.execute(
                sa.text(
                    "TRUNCATE links, link_events, event_outbox, alerts RESTART IDENTITY CASCADE"
                )
            )
    single_engine = make_engine(single_url)
    single_results = []
    for op, campaign, ids, t in steps:
        out = []
        with transaction(single_engine) as s:
            for i in ids:
                now = T0 + timedelta(seconds=t)
                if op == "link":
                    assert campaign is not None
                    r = request_link_of(s, "plivo", number(i), campaign, source=Source.API, now=now)
                else:
                    r = request_unlink_of(s, "plivo", number(i), source=Source.API, now=now)
                out.append((number(i), r.accepted, r.changed, r.reason))
        single_results.append(out)
    singles = snapshot_tables(single_engine)
    single_engine.dispose()

    assert batch_results == single_results
    assert batched == singles
    assert len(batched[1]) == 4 + 1 + 3 + 2 + 1  # audit rows: one per change
