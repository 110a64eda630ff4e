"""Polling alone converges: gunicorn, a real worker and beat, PostgreSQL, Redis, the sandbox.

Every callback is dropped here; only the reconciler's polls move links.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from models.batch import Entry, link_numbers
from models.db import transaction
from models.statemachine import Source
from models.tables import Alert, Link, LinkEvent
from sandbox import SandboxHandle
from tests.stack import Stack, wait_for

pytestmark = pytest.mark.integration

TRUTH = {
    "linked": "COMPLETED",
    "link_failed": "FAILED",
    "pending_unlink": "UNLINK_PROCESSING",
    "unlink_failed": "UNLINK_FAILED",
}


def numbers_for(series: int, campaign_index: int, count: int) -> list[str]:
    """Valid US numbers (exchange 2xx-9xx), distinct per series and campaign."""
    return [f"+1202{series + 2}{campaign_index:02d}{i:04d}" for i in range(count)]


def request_links(db: sa.Engine, plan: dict[tuple[str, str], list[str]]) -> None:
    with transaction(db) as s:
        for (provider, campaign), numbers in plan.items():
            link_numbers(s, provider, campaign, [Entry(n) for n in numbers], source=Source.API)


def ours(db: sa.Engine) -> dict[tuple[str, str], str]:
    with Session(db) as s:
        return {(ln.provider, ln.number): ln.state for ln in s.exec(select(Link)).all()}


def truth(sandbox: SandboxHandle, keys: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    found = {
        (r["provider"], r["number"]): TRUTH.get(r["status"], "PENDING") for r in sandbox.numbers()
    }
    return {k: found.get(k, "UNLINKED") for k in keys}


def converged(db: sa.Engine, sandbox: SandboxHandle) -> bool:
    mine = ours(db)
    return mine == truth(sandbox, set(mine))


@pytest.fixture
def polling_only(stack: Stack, sandbox: SandboxHandle) -> Stack:
    sandbox.configure(callbacks_enabled=False, delay=1.0, link_failure_ratio=0.3)
    stack.env["TELNYX_RATE_LIMIT_PER_SECOND"] = "15"
    stack.env["DRIFT_CHECK_SECONDS"] = "3"
    stack.start_web()
    stack.start_worker(concurrency=2)
    stack.start_beat()
    return stack


def plan_500() -> dict[tuple[str, str], list[str]]:
    plan = {}
    for p, provider in enumerate(("plivo", "telnyx")):
        for c in range(5):
            plan[(provider, f"CAMP{p}{c}")] = numbers_for(p + 1, c, 50)
    return plan


def assert_each_transition_once(db: sa.Engine) -> None:
    with Session(db) as s:
        rows = s.exec(select(LinkEvent.link_id, LinkEvent.generation, LinkEvent.to_state)).all()
    dupes = [k for k, n in Counter(rows).items() if n > 1]
    assert dupes == []


def test_500_numbers_converge_from_polling_alone(
    polling_only: Stack, sandbox: SandboxHandle, db: sa.Engine
) -> None:
    request_links(db, plan_500())
    wait_for(lambda: len(sandbox.numbers()) == 500, 120, f"all links sent\n{polling_only.logs()}")
    sandbox.settle()
    settled = time.monotonic()
    wait_for(lambda: converged(db, sandbox), 120, f"convergence\n{polling_only.logs()}")
    took = time.monotonic() - settled
    states = Counter(ours(db).values())
    assert set(states) == {"COMPLETED", "FAILED"} and states["FAILED"] > 50
    assert_each_transition_once(db)
    with Session(db) as s:
        # One alert row per failed link (digests, which group them, are rows of their own).
        failed_alerts = s.exec(
            select(Alert).where(Alert.kind == "link_failed", Alert.is_digest.is_(False))  # type: ignore[attr-defined]
        ).all()
    assert len(failed_alerts) == states["FAILED"]
    # 2 poll intervals (1 s) plus the backoff cap (30 intervals).
    print(f"converged {took:.1f}s after the sandbox settled")
    assert took < 2 * 1 + 30
    counters = sandbox.counters()
    for account in counters["accounts"].values():
        assert account["rate_limited"] == 0


def test_converges_through_5xx_and_429_within_the_rate_limit(
    polling_only: Stack, sandbox: SandboxHandle, db: sa.Engine
) -> None:
    sandbox.configure(error_5xx_ratio=0.1, rate_429_ratio=0.1, retry_after=1)
    plan = {k: v[:20] for k, v in plan_500().items()}
    request_links(db, plan)
    wait_for(lambda: len(sandbox.numbers()) == 200, 180, f"all links sent\n{polling_only.logs()}")
    sandbox.settle()
    wait_for(lambda: converged(db, sandbox), 180, f"convergence\n{polling_only.logs()}")
    assert_each_transition_once(db)
    counters = sandbox.counters()
    assert counters["faults"], "the faults were injected"
    (telnyx,) = [v for k, v in counters["accounts"].items() if k.startswith("telnyx:")]
    # The contract (DESIGN §3) counts over any 5 s window: at most 5 x 15. (Per second, the
    # sandbox's arrival times may put one request of the next second into this one.)
    assert telnyx["max_5s"] <= 5 * 15 and telnyx["rate_limited"] == 0
    for account in counters["accounts"].values():
        assert account["rate_limited"] == 0


def test_drift_is_recorded_and_alerted_once(
    polling_only: Stack, sandbox: SandboxHandle, db: sa.Engine
) -> None:
    sandbox.configure(link_failure_ratio=0.0)
    plan = {("telnyx", "CAMPD"): numbers_for(3, 1, 3), ("plivo", "CAMPE"): numbers_for(4, 1, 3)}
    request_links(db, plan)
    wait_for(lambda: len(sandbox.numbers()) == 6, 60, "sent")
    sandbox.settle()
    wait_for(lambda: set(ours(db).values()) == {"COMPLETED"}, 60, "completed")
    for provider, number in (
        ("telnyx", plan[("telnyx", "CAMPD")][0]),
        ("plivo", plan[("plivo", "CAMPE")][0]),
    ):
        with sandbox.client() as c:
            r = c.post(
                "/_sandbox/drift", json={"provider": provider, "number": number, "action": "unlink"}
            )
            assert r.status_code == 200, r.text
        wait_for(
            lambda p=provider, n=number: ours(db)[(p, n)] == "UNLINKED",
            30,
            f"drift seen\n{polling_only.logs()}",
        )
    with Session(db) as s:
        drift_rows = s.exec(select(LinkEvent).where(LinkEvent.drift)).all()
        alerts = s.exec(select(Alert).where(Alert.kind == "drift")).all()
    assert len(drift_rows) == 2 and len(alerts) == 2
    # Later drift checks find the same truth: nothing new.
    time.sleep(4)  # one more drift-check period of the real beat process
    with Session(db) as s:
        assert len(s.exec(select(Alert).where(Alert.kind == "drift")).all()) == 2


def test_list_endpoints_keep_requests_per_number_low(
    polling_only: Stack, sandbox: SandboxHandle, db: sa.Engine
) -> None:
    sandbox.configure(link_failure_ratio=0.0)
    plan = {("plivo", "CAMPL"): numbers_for(5, 1, 50), ("telnyx", "CAMPT"): numbers_for(6, 1, 50)}
    request_links(db, plan)
    wait_for(lambda: len(sandbox.numbers()) == 100, 60, "sent")
    sandbox.settle()
    wait_for(lambda: set(ours(db).values()) == {"COMPLETED"}, 60, "completed")
    polling_only.procs["beat"].stop()
    before = _polls(sandbox)
    with transaction(db) as s:  # all 100 due at once
        s.execute(sa.update(Link).values(next_poll_at=sa.func.now()))
    polling_only.start_beat()
    with Session(db) as s:
        wait_for(lambda: _polls(sandbox) > before, 30, "polled")
    time.sleep(3)  # let the round finish (the beat process runs on the real clock)
    spent = _polls(sandbox) - before
    print(f"{spent} provider requests for 100 due numbers")
    assert spent / 100 <= 0.1


def _polls(sandbox: SandboxHandle) -> int:
    total = 0
    for provider in sandbox.counters()["requests"].values():
        for methods in provider.values():
            total += sum(sum(codes.values()) for m, codes in methods.items() if m == "GET")
    return total
