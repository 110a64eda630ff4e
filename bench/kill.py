"""Seconds from a worker's SIGKILL until its claimed links are claimed again (DESIGN §7).

The machinery of ``tests/integration/test_worker_kill_lease.py``, as a figure: a real Celery
worker (A) sends 300 Telnyx link requests at 5 per second (a run of about a minute, renewing
its claims' 30 s lease), a second worker (B) idles, A is SIGKILLed (master and pool), and the
clock runs until B has claimed every link A held (a new claim replaces A's lease end).
The baseline is the lease itself: a dead worker's claims wait at most that long, plus a beat
tick and the start of B's run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import redis
from sqlmodel import Session, col, select

from bench.common import REDIS_URL, Figure, log
from models.batch import Entry, link_numbers
from models.db import make_engine, transaction
from models.polling import CLAIM_LEASE
from models.statemachine import Source
from models.tables import Link
from sandbox import start_sandbox
from tests.integration.test_worker_kill_lease import NUMBERS, leased
from tests.stack import Stack, wait_for

TARGET_S = 30.0


def run(database_url: str, workdir: Path, quick: bool) -> tuple[list[Figure], dict[str, Any]]:
    redis.Redis.from_url(REDIS_URL).flushdb()
    db = make_engine(database_url)
    sandbox = start_sandbox(delay=0.5, seed=7)
    env = sandbox.env() | {
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "API_TOKEN": "bench-token-0123456789abcdefghijklmnopq",
        "POLL_INTERVAL_SECONDS": "1",
        "SWEEP_SECONDS": "2",
        "TELNYX_RATE_LIMIT_PER_SECOND": "5",  # a run of 300 requests: about 60 s
    }
    stack = Stack.create(workdir / "kill", env)
    sandbox.configure(callbacks_enabled=False)
    try:
        a = stack.start_worker("worker_a", concurrency=1)
        with transaction(db) as s:
            link_numbers(s, "telnyx", "CKILL", [Entry(n) for n in NUMBERS], source=Source.API)
        stack.start_beat()
        wait_for(
            lambda: 100 <= len(leased(db)) < len(NUMBERS),
            90,
            f"worker A sending requests\n{a.tail()}",
        )
        stack.start_worker("worker_b", concurrency=1)
        a.kill()
        killed_at = time.monotonic()
        held = leased(db)  # A's last renewal, as it stands at its death

        def claimed_again() -> bool:
            with Session(db) as s:
                rows = s.exec(
                    select(Link.id, Link.next_poll_at).where(col(Link.id).in_(held))
                ).all()
            return all(poll_at != held[link_id] for link_id, poll_at in rows)

        wait_for(claimed_again, CLAIM_LEASE.total_seconds() + 90, "B claiming A's links")
        seconds = time.monotonic() - killed_at
        log(f"  {len(held)} links held by the killed worker claimed again after {seconds:.1f} s")
    finally:
        stack.stop()
        sandbox.stop()
        db.dispose()
    detail = {"links_held": len(held), "lease_s": CLAIM_LEASE.total_seconds()}
    return [
        Figure(
            "SIGKILL to claims worked again",
            seconds,
            "s",
            f"<= {TARGET_S:g} s",
            seconds <= TARGET_S,
            f"lease {CLAIM_LEASE.total_seconds():g} s renewed every 10 s; {len(held)} links held",
            detail,
        )
    ], {"worker_kill": detail}
