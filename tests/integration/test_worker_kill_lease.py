"""A SIGKILLed worker's claims are worked again within one short lease (DESIGN §7).

A real Celery worker (A) is sending 300 Telnyx link requests, one a request at 5 per second,
so its run holds its claims for about a minute, renewing their short lease. A second worker (B)
is up and idle. A is SIGKILLed (master and pool): its links keep the lease it last renewed,
which no heartbeat extends any more. The test measures the real seconds until B has claimed
every one of them again (a claim replaces A's lease end) and asserts at most the lease plus
MARGIN: the heartbeat renews every 10 s, beat ticks every 2 s, and the machine is loaded.
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from models.batch import Entry, link_numbers
from models.db import transaction
from models.polling import CLAIM_LEASE
from models.statemachine import Source
from models.tables import Link, utcnow
from sandbox import SandboxHandle
from tests.stack import Stack, wait_for

pytestmark = pytest.mark.integration

NUMBERS = [f"+1202{5 + i // 10_000}{(i // 100) % 100:02d}{i % 100:04d}" for i in range(300)]
#: Beyond one lease: a beat interval (2 s), a run's start, and a loaded 2-core machine.
MARGIN = 10.0  # lease + margin = DESIGN §7's 30 s


def leased(db: sa.Engine) -> dict[int, datetime]:
    """Links still requested whose lease has not run out: claimed by a run, not yet worked."""
    with Session(db) as s:
        rows = s.exec(
            select(Link).where(Link.state == "LINK_REQUESTED", col(Link.next_poll_at) > utcnow())
        ).all()
    return {link.id or 0: link.next_poll_at for link in rows if link.next_poll_at}


def test_a_killed_workers_claims_are_worked_again_within_one_lease(
    stack: Stack, sandbox: SandboxHandle, db: sa.Engine
) -> None:
    sandbox.configure(callbacks_enabled=False)
    stack.env["TELNYX_RATE_LIMIT_PER_SECOND"] = "5"  # a run of 300 requests: about 60 s
    stack.start_web()
    a = stack.start_worker("worker_a", concurrency=1)
    with transaction(db) as s:
        link_numbers(s, "telnyx", "CKILL", [Entry(n) for n in NUMBERS], source=Source.API)
    stack.start_beat()
    # A is mid-run: some requests sent, most of its claims still waiting.
    wait_for(
        lambda: len(leased(db)) >= 100 and len(leased(db)) < len(NUMBERS),
        60,
        f"worker A sending requests\n{a.tail()}",
    )
    stack.start_worker("worker_b", concurrency=1)
    held = leased(db)
    assert len(held) >= 50, "worker A finished before B was up; slow the provider down"
    a.kill()
    killed_at = time.monotonic()
    held = leased(db)  # A's last renewal, as it stands at its death

    def claimed_again() -> bool:
        with Session(db) as s:
            now = s.exec(select(Link.id, Link.next_poll_at).where(col(Link.id).in_(held))).all()
        return all(poll_at != held[link_id] for link_id, poll_at in now)

    wait_for(claimed_again, CLAIM_LEASE.total_seconds() + MARGIN + 30, "B claiming A's links")
    seconds = time.monotonic() - killed_at
    print(f"{len(held)} links held by the killed worker claimed again after {seconds:.1f} s")
    assert seconds <= CLAIM_LEASE.total_seconds() + MARGIN
    # And they are worked: B sends their requests.
    wait_for(
        lambda: len(leased(db)) == 0 and not _still_requested(db),
        120,
        "every request sent",
    )


def _still_requested(db: sa.Engine) -> bool:
    with Session(db) as s:
        return s.exec(select(Link).where(Link.state == "LINK_REQUESTED")).first() is not None
