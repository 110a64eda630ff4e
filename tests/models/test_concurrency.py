"""Exactly-once effect from the database, under real concurrent transactions."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from models.db import make_engine, transaction
from models.links import (
    CONCURRENT_ATTEMPTS,
    ConcurrentChange,
    _cas_update,
    apply_observation,
    load,
    request_link_of,
    retry_concurrent,
)
from models.statemachine import Observation, Signal, Source, Verdict
from models.tables import Link, LinkEvent

T0 = datetime(2026, 3, 1, tzinfo=UTC)
NUMBER = "+12025550199"


def _seed(engine: sa.Engine) -> None:
    with transaction(engine) as s:
        request_link_of(s, "telnyx", NUMBER, "C1", source=Source.API, now=T0)


@pytest.mark.parametrize("workers", [2, 8])
def test_concurrent_applications_of_one_observation_make_one_transition(
    pg_engine: sa.Engine, workers: int
) -> None:
    _seed(pg_engine)
    observation = Observation(
        source=Source.WEBHOOK,
        provider_status="ASSIGNMENT:success",
        observed_at=T0 + timedelta(seconds=5),
        signal=Signal.LINKED,
    )
    barrier = threading.Barrier(workers)
    verdicts: list[Verdict] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with Session(pg_engine) as s:
                barrier.wait()
                verdicts.append(apply_observation(s, "telnyx", NUMBER, observation).verdict)
                s.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert sorted(verdicts) == sorted([Verdict.APPLIED] + [Verdict.DUPLICATE] * (workers - 1))
    with Session(pg_engine) as s:
        rows = s.exec(select(LinkEvent).where(LinkEvent.to_state == "COMPLETED")).all()
        assert len(rows) == 1


def test_compare_and_set_refuses_a_lost_update(pg_engine: sa.Engine) -> None:
    """Without the row lock, the CAS alone still lets only one writer through."""
    _seed(pg_engine)
    with Session(pg_engine) as a, Session(pg_engine) as b:
        link_a = load(a, "telnyx", NUMBER, lock=False)
        link_b = load(b, "telnyx", NUMBER, lock=False)
        assert link_a is not None and link_b is not None
        _cas_update(a, link_a, state="PROCESSING")
        a.commit()
        with pytest.raises(ConcurrentChange):
            _cas_update(b, link_b, state="FAILED")
        b.rollback()
    with Session(pg_engine) as s:
        assert s.exec(select(Link.state)).one() == "PROCESSING"


def _save_racing(engine: sa.Engine, state: str, *, lose: int | None) -> None:
    """Load, let another writer record a newer observation (the ``lose``-th second after T0)
    when ``lose`` is set, then compare-and-set."""
    with transaction(engine) as s:
        link = load(s, "telnyx", NUMBER, lock=False)
        assert link is not None
        if lose is not None:
            with transaction(engine) as other:
                theirs = load(other, "telnyx", NUMBER, lock=False)
                assert theirs is not None
                _cas_update(other, theirs, observed_at=T0 + timedelta(seconds=lose))
        _cas_update(s, link, state=state)


def test_retry_concurrent_runs_a_transaction_that_lost_a_race_again(pg_engine: sa.Engine) -> None:
    _seed(pg_engine)
    tries: list[int] = []

    def save() -> int:
        tries.append(1)
        _save_racing(pg_engine, "PROCESSING", lose=1 if len(tries) == 1 else None)
        return len(tries)

    assert retry_concurrent(save) == 2
    with Session(pg_engine) as s:
        assert s.exec(select(Link.state)).one() == "PROCESSING"


def test_retry_concurrent_gives_up_with_the_last_conflict(pg_engine: sa.Engine) -> None:
    _seed(pg_engine)
    tries: list[int] = []

    def save() -> None:
        tries.append(1)
        _save_racing(pg_engine, "FAILED", lose=len(tries))

    with pytest.raises(ConcurrentChange):
        retry_concurrent(save)
    assert len(tries) == CONCURRENT_ATTEMPTS
    with Session(pg_engine) as s:
        assert s.exec(select(Link.state)).one() == "LINK_REQUESTED"


def test_duplicate_audit_row_is_refused_by_the_database(engine: sa.Engine) -> None:
    _seed(engine)
    with pytest.raises(sa.exc.IntegrityError), transaction(engine) as s:
        link = load(s, "telnyx", NUMBER)
        assert link is not None and link.id is not None
        s.add(
            LinkEvent(
                link_id=link.id,
                provider="telnyx",
                number=NUMBER,
                campaign_id="C1",
                generation=1,
                to_state="LINK_REQUESTED",
                source="api",
            )
        )


def _request_many(url: str, start: int) -> None:
    engine = make_engine(url)
    for i in range(start, start + 25):
        with transaction(engine) as s:
            request_link_of(s, "plivo", f"+1202555{i:04d}", "C1", source=Source.CLI)
    engine.dispose()


def test_sqlite_accepts_writes_from_several_processes(sqlite_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_request_many, args=(sqlite_url, n * 100)) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM links")).scalar() == 100
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
    engine.dispose()
