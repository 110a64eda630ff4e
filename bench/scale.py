"""4. Scale: 1,000,000 links and 10,000,000 audit rows (quick: 100,000 / 1,000,000) in a
dedicated database, filled with COPY (psycopg); then the four read paths, timed through the
real functions, with EXPLAIN (ANALYZE, BUFFERS) plans saved.

The database is kept between runs when its row counts match (``--drop-scale-db`` drops it).
Secondary indexes and foreign keys are dropped during the COPY and rebuilt after (with the
definitions the migrations created), then VACUUM ANALYZE.
"""

from __future__ import annotations

import random
import re
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlmodel import Session

from bench.common import (
    Figure,
    create_database,
    database_exists,
    db_url,
    drop_database,
    log,
    percentile,
)
from models.history import link_history, state_as_of
from models.polling import claim_due
from models.reports import state_counts

EVENTS_PER_LINK = 10
BIG_CAMPAIGN = "CBIG0000"
CYCLE = [
    (1, None, "LINK_REQUESTED"),
    (1, "LINK_REQUESTED", "PROCESSING"),
    (1, "PROCESSING", "COMPLETED"),
    (2, "COMPLETED", "UNLINK_REQUESTED"),
    (2, "UNLINK_REQUESTED", "UNLINK_PROCESSING"),
    (2, "UNLINK_PROCESSING", "UNLINKED"),
    (3, "UNLINKED", "LINK_REQUESTED"),
    (3, "LINK_REQUESTED", "PROCESSING"),
    (3, "PROCESSING", "COMPLETED"),
    (4, "COMPLETED", "LINK_REQUESTED"),
]
BASE = datetime(2024, 1, 1, tzinfo=UTC)


def db_name(quick: bool) -> str:
    return "dlcsync_bench_scale_quick" if quick else "dlcsync_bench_scale"


def number_of(i: int) -> str:
    return f"+1{2000000000 + i:010d}"


def link_of(i: int, n: int) -> tuple[str, str, str]:
    """(provider, number, campaign) of link i: 10 % in one big campaign, the rest in 200s."""
    provider = "plivo" if i % 2 == 0 else "telnyx"
    campaign = BIG_CAMPAIGN if i < n // 10 else f"C{(i // 200):07d}"
    return provider, number_of(i), campaign


def _counts(url: str) -> tuple[int, int]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            links = conn.execute(sa.text("SELECT count(*) FROM links")).scalar_one()
            events = conn.execute(sa.text("SELECT count(*) FROM link_events")).scalar_one()
            return int(links), int(events)
    except sa.exc.SQLAlchemyError:
        return -1, -1
    finally:
        engine.dispose()


def generate(url: str, n_links: int) -> float:
    started = time.monotonic()
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    rng = random.Random(42)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(sa.text("SET maintenance_work_mem = '1GB'"))
        idx = conn.execute(
            sa.text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN"
                " ('links', 'link_events') AND indexname NOT IN ('links_pkey', 'link_events_pkey')"
            )
        ).all()
        fks = conn.execute(
            sa.text(
                "SELECT conname, conrelid::regclass::text, pg_get_constraintdef(oid)"
                " FROM pg_constraint WHERE contype IN ('f', 'u')"
                " AND conrelid::regclass::text IN ('links', 'link_events')"
            )
        ).all()
        constraint_names = {name for name, _, _ in fks}
        idx = [(n, d) for n, d in idx if n not in constraint_names]
        for name, table, _ in fks:
            conn.execute(sa.text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
        for name, _ in idx:
            conn.execute(sa.text(f'DROP INDEX IF EXISTS "{name}"'))
        raw = conn.connection.driver_connection
        with raw.cursor() as cur:  # type: ignore[union-attr]
            with cur.copy(
                "COPY links (id, provider, number, campaign_id, state, generation, direction,"
                " drift, observed_at, generation_started_at, next_poll_at, poll_attempts,"
                " request_attempts, needs_check, created_at, updated_at) FROM STDIN"
            ) as copy:
                buf = []
                for i in range(n_links):
                    provider, number, campaign = link_of(i, n_links)
                    r = rng.random()
                    if r < 0.05:  # pending: due within the last 10 minutes
                        state = "PROCESSING"
                        due = now - timedelta(seconds=rng.uniform(0, 600))
                    else:  # terminal: the daily drift check, spread over the next day
                        state = "COMPLETED" if r < 0.9 else ("FAILED" if r < 0.95 else "UNLINKED")
                        due = now + timedelta(seconds=rng.uniform(60, 86400))
                    t = (BASE + timedelta(seconds=i)).isoformat()
                    buf.append(
                        f"{i + 1}\t{provider}\t{number}\t{campaign}\t{state}\t4\tlink\tf\t{t}\t{t}"
                        f"\t{due.isoformat()}\t0\t0\tf\t{t}\t{t}\n"
                    )
                    if len(buf) >= 20000:
                        copy.write("".join(buf))
                        buf.clear()
                copy.write("".join(buf))
            log(f"  scale: {n_links} links copied ({time.monotonic() - started:.0f}s)")
            with cur.copy(
                "COPY link_events (link_id, provider, number, campaign_id, generation,"
                " from_state, to_state, source, provider_status, recorded_at, reason, drift)"
                " FROM STDIN"
            ) as copy:
                buf = []
                hour = 3600
                for i in range(n_links):
                    provider, number, campaign = link_of(i, n_links)
                    head = f"{i + 1}\t{provider}\t{number}\t{campaign}\t"
                    base = BASE.timestamp() + i
                    for k in range(EVENTS_PER_LINK):
                        gen, frm, to = CYCLE[k]
                        at = datetime.fromtimestamp(base + k * hour, UTC).isoformat()
                        buf.append(
                            f"{head}{gen}\t{frm or chr(92) + 'N'}\t{to}\tpoll\t\\N\t{at}\t\\N\tf\n"
                        )
                    if len(buf) >= 50000:
                        copy.write("".join(buf))
                        buf.clear()
                copy.write("".join(buf))
            log(f"  scale: {n_links * EVENTS_PER_LINK} audit rows copied")
        conn.execute(sa.text("SELECT setval('links_id_seq', :n)"), {"n": n_links})
        for _, definition in idx:
            conn.execute(sa.text(definition))
        for name, table, definition in fks:
            conn.execute(sa.text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE links"))
        conn.execute(sa.text("VACUUM ANALYZE link_events"))
    engine.dispose()
    return time.monotonic() - started


class Capture:
    """The SQL statements a function sends (to EXPLAIN them afterwards)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.statements: list[tuple[str, Any]] = []
        self.on = False
        event.listen(engine, "before_cursor_execute", self._hook)

    def _hook(self, conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if self.on:
            self.statements.append((statement, params))


def _explain(engine: sa.Engine, statements: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    plans = []
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            for statement, params in statements:
                rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, params).all()
                text = "\n".join(r[0] for r in rows)
                used = sorted(
                    set(
                        re.findall(
                            r"(?:Index Only Scan|Index Scan|Bitmap Index Scan)"
                            r"(?: Backward)? (?:using|on) (\w+)",
                            text,
                        )
                    )
                )
                plans.append({"sql": statement, "indexes": used, "plan": text})
        finally:
            trans.rollback()
    return plans


def _time(fn: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def run(drop: bool, quick: bool) -> tuple[list[Figure], dict[str, Any]]:
    n_links = 100_000 if quick else 1_000_000
    n_events = n_links * EVENTS_PER_LINK
    name = db_name(quick)
    url = db_url(name)
    if drop:
        drop_database(name)
    gen_seconds = None
    if database_exists(name) and _counts(url) == (n_links, n_events):
        log(f"  scale: reusing {name} ({n_links} links, {n_events} audit rows)")
    else:
        log(f"  scale: generating {name} ({n_links} links, {n_events} audit rows)")
        create_database(name)
        gen_seconds = generate(url, n_links)
        log(f"  scale: generated in {gen_seconds:.0f}s")
    engine = sa.create_engine(url)
    cap = Capture(engine)
    rng = random.Random(7)
    samples = [link_of(rng.randrange(n_links), n_links) for _ in range(50)]
    it = iter(samples * 100)

    def history() -> None:
        p, num, _ = next(it)
        with Session(engine) as s:
            assert len(link_history(s, p, num)) == EVENTS_PER_LINK

    def due() -> None:
        with Session(engine) as s:
            claims = claim_due(s, limit=500)
            assert len(claims) == 500
            s.rollback()

    def summary_big() -> None:
        with Session(engine) as s:
            state_counts(s, provider="plivo", campaign_id=BIG_CAMPAIGN)

    def summary_small() -> None:
        p, _, c = link_of(n_links - 1 - rng.randrange(n_links // 2), n_links)
        with Session(engine) as s:
            state_counts(s, provider=p, campaign_id=c)

    def as_of() -> None:
        p, num, _ = next(it)
        i = int(num[2:]) - 2000000000
        at = BASE + timedelta(seconds=i, hours=4.5)
        with Session(engine) as s:
            row = state_as_of(s, p, num, at)
            assert row is not None and row.to_state == CYCLE[4][2], row

    checks = [
        ("scale: number history", history, 10.0, 50),
        ("scale: due-links claim (500)", due, 50.0, 15),
        ("scale: campaign summary", summary_big, 200.0, 15),
        ("scale: as_of query", as_of, 10.0, 50),
    ]
    figures = []
    plans: dict[str, Any] = {}
    for label, fn, target, repeat in checks:
        fn()  # warm (plans, caches)
        times = _time(fn, repeat)
        cap.statements.clear()
        cap.on = True
        fn()
        cap.on = False
        plan = _explain(engine, list(cap.statements))
        plans[label] = plan
        med = statistics.median(times)
        figures.append(
            Figure(
                label,
                med,
                "ms",
                f"< {target:g} ms",
                med < target,
                f"median of {repeat}; p95 {percentile(times, 95):.1f} ms",
                {
                    "p95_ms": percentile(times, 95),
                    "max_ms": max(times),
                    "indexes": sorted({i for p in plan for i in p["indexes"]}),
                },
            )
        )
        log(f"  {label}: median {med:.2f} ms, indexes {figures[-1].detail['indexes']}")
    small = _time(summary_small, 20)
    figures[2].detail["typical_campaign_200_links_median_ms"] = statistics.median(small)
    figures[2].baseline += f"; campaign of {n_links // 10} links (a 200-link one: " + (
        f"{statistics.median(small):.1f} ms)"
    )
    engine.dispose()
    return figures, {
        "scale_plans": plans,
        "scale_db": {
            "name": name,
            "links": n_links,
            "audit_rows": n_events,
            "generated_seconds": gen_seconds,
        },
    }
