"""2. Event application: inbox rows applied per second by one worker (--concurrency 1),
against the rate at which the same worker runs no-op Celery tasks, in the same run.

Rows are pre-inserted into the inbox (telnyx ASSIGNMENT success for links in LINK_REQUESTED)
and enqueued before the worker starts, (a) one id per task as the intake does, and (b) 50 ids
per task as the sweeper does. Rates come from the timestamps the work itself records
(inbox.processed_at; the first and last no-op write theirs), so worker start-up is excluded.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa

from bench.common import REDIS_URL, Figure, RssSampler, group_hwm_mb, log
from bench.noop_tasks import MARK_KEY, NOOP
from common.settings import Settings
from providers.base import CallbackRequest, Trust
from providers.delivery import event_record
from providers.telnyx import TelnyxCallbackHandler
from tests.stack import Stack, wait_for
from worker.celery_app import PROCESS_INBOX, create_celery

SWEEP_BATCH = 50
URL = "http://127.0.0.1/webhooks/telnyx"
#: Inbox ids per task measured: one (a webhook's own task), the sweeper's batch, a large one.
SIZES = (1, SWEEP_BATCH, 500)


def _seed(engine: sa.Engine, n: int, tag: str) -> list[int]:
    """``n`` links in LINK_REQUESTED and one unprocessed inbox row per link; the row ids."""
    now = datetime.now(UTC)
    handler = TelnyxCallbackHandler(public_key=None)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO links (provider, number, campaign_id, state, generation, direction,"
                " drift, observed_at, generation_started_at, next_poll_at, poll_attempts,"
                " request_attempts, needs_check, created_at, updated_at)"
                " SELECT 'telnyx', :prefix || lpad(g::text, 6, '0'), 'CAPPLY' || (g % 50),"
                " 'LINK_REQUESTED', 1, 'link', false, :t, :t, :far, 0, 0, false, :t, :t"
                " FROM generate_series(1, :n) g"
            ),
            {"prefix": f"+1{tag}", "n": n, "t": now, "far": now.replace(year=now.year + 1)},
        )
        rows = []
        for g in range(1, n + 1):
            number = f"+1{tag}{g:06d}"
            body = {
                "data": {
                    "event_type": "10dlc.phone_number.update",
                    "id": str(uuid.uuid4()),
                    "occurred_at": datetime.now(UTC).isoformat(),
                    "payload": {
                        "campaignId": f"CAPPLY{g % 50}",
                        "phoneNumber": number,
                        "status": "success",
                        "type": "ASSIGNMENT",
                        "reasons": [],
                    },
                    "record_type": "event",
                },
                "meta": {"attempt": 1},
            }
            raw = json.dumps(body).encode()
            # The parsed event is stored with the row, as the web view does.
            event = handler.parse(CallbackRequest("POST", URL, {}, raw, "application/json"))
            rows.append(
                {
                    "k": body["data"]["id"],
                    "b": raw,
                    "e": json.dumps(event_record(event, Trust.BODY)),
                    "h": json.dumps(
                        {
                            "content-type": "application/json",
                            ":method": "POST",
                            ":url": URL,
                            ":query": "",
                        }
                    ),
                    "t": datetime.now(UTC),
                }
            )
        conn.execute(
            sa.text(
                "INSERT INTO inbox (provider, dedupe_key, body, headers, event, received_at,"
                " duplicate_deliveries, attempts) VALUES ('telnyx', :k, :b, CAST(:h AS json),"
                " CAST(:e AS json), :t, 0, 0)"
            ),
            rows,
        )
        ids = list(
            conn.execute(
                sa.text("SELECT id FROM inbox WHERE outcome IS NULL ORDER BY id")
            ).scalars()
        )
    # A table in service has statistics (autovacuum analyzes a bulk load within a minute);
    # the figure is the steady rate, not the planner's first minute on a new table.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE links"))
        conn.execute(sa.text("ANALYZE inbox"))
    return ids


def _run_worker(stack: Stack, name: str, done: Any, timeout: float) -> dict[str, float]:
    worker = stack.start_worker(name=name, concurrency=1, app="bench.noop_tasks")
    try:
        with RssSampler({"worker": worker.pid}, step=0.5) as rss:
            wait_for(done, timeout, f"{name} finished\n{worker.tail()}", step=0.2)
        return {"peak_rss_mb": rss.peak("worker"), "hwm_mb": group_hwm_mb(worker.pid)}
    finally:
        worker.stop()


def run(database_url: str, workdir: Path, quick: bool) -> tuple[list[Figure], dict[str, Any]]:
    n_rows = 1500 if quick else 5000
    n_noop = 3000 if quick else 12000
    r = redis.Redis.from_url(REDIS_URL)
    r.flushdb()
    engine = sa.create_engine(database_url)
    settings = Settings(_env_file=None, database_url=database_url, redis_url=REDIS_URL)  # type: ignore[call-arg]
    celery = create_celery(settings)
    env = {"DATABASE_URL": database_url, "REDIS_URL": REDIS_URL, "API_TOKEN": "bench"}
    stack = Stack.create(workdir / "apply", env)
    mem: dict[str, Any] = {}

    def noop_rate(name: str) -> float:
        r.delete(MARK_KEY + "first", MARK_KEY + "last")
        for i in range(n_noop):
            mark = "first" if i == 0 else ("last" if i == n_noop - 1 else None)
            celery.send_task(NOOP, args=[mark])
        mem[name] = _run_worker(stack, name, lambda: r.get(MARK_KEY + "last"), 300)
        t_first = float(r.get(MARK_KEY + "first"))  # type: ignore[arg-type]
        t_last = float(r.get(MARK_KEY + "last"))  # type: ignore[arg-type]
        rate = (n_noop - 1) / (t_last - t_first)
        log(f"  no-op tasks: {rate:.0f}/s")
        return rate

    def inbox_rate(ids: list[int], per_task: int, name: str) -> float:
        for start in range(0, len(ids), per_task):
            celery.send_task(PROCESS_INBOX, args=[ids[start : start + per_task]])

        def done() -> bool:
            with engine.connect() as conn:
                return not conn.execute(
                    sa.text("SELECT count(*) FROM inbox WHERE outcome IS NULL AND id = ANY(:ids)"),
                    {"ids": ids},
                ).scalar_one()

        mem[name] = _run_worker(stack, name, done, 600)
        with engine.connect() as conn:
            lo, hi, applied = conn.execute(
                sa.text(
                    "SELECT min(processed_at), max(processed_at),"
                    " count(*) FILTER (WHERE outcome = 'applied') FROM inbox WHERE id = ANY(:ids)"
                ),
                {"ids": ids},
            ).one()
        assert applied == len(ids), (applied, len(ids))
        rate = (len(ids) - 1) / (hi - lo).total_seconds()
        log(f"  inbox rows, {per_task} per task: {rate:.0f}/s")
        return rate

    # Baseline before and after (the machine is shared): their mean is the baseline.
    noop_before = noop_rate("noop")
    rates = {
        size: inbox_rate(_seed(engine, n_rows, f"3{i + 1:02d}"), size, f"inbox_{size}")
        for i, size in enumerate(SIZES)
    }
    noop_after = noop_rate("noop_after")
    noop_rate_ = (noop_before + noop_after) / 2
    engine.dispose()
    stack.stop()
    detail = {
        "noop_tasks_per_s": noop_rate_,
        "noop_tasks_per_s_before_after": [noop_before, noop_after],
        **{f"rows_per_s_batch_{size}": rate for size, rate in rates.items()},
        "rows": n_rows,
        "noop_tasks": n_noop,
        "worker": "celery -A bench.noop_tasks worker --concurrency 1",
    }
    figures = []
    for size, rate in rates.items():
        # One id per task cannot pass the task rate: informative (DESIGN §7 asks it of batches).
        ok = None if size == 1 else rate / noop_rate_ >= 2
        figures.append(
            Figure(
                f"apply rate, {size} id{'s' if size > 1 else ''}/task",
                rate / noop_rate_,
                "x",
                ">= 2" if ok is not None else "-",
                ok,
                f"no-op {noop_rate_:.0f} tasks/s; {rate:.0f} rows/s",
                detail if size == SWEEP_BATCH else {},
            )
        )
    return figures, {"worker_memory": mem}
