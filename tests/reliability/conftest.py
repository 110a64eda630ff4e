"""Fixtures of the reliability suite: a supervised real stack and the scenario runner.

CI mode (the default, part of ``python3 dev.py test``): small sizes, a few minutes in all.
Long mode (``DLCSYNC_RELIABILITY=long``, or ``make reliability-long``): every scenario at
full size. Long-only scenarios are not collected at all in CI mode (a skip would fail CI).
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from models.batch import Entry, link_numbers
from models.db import make_engine, transaction
from models.statemachine import Source
from models.tables import Link, LinkEvent
from tests.reliability import oracle
from tests.reliability.chaos import Chaos, RelStack, Storm, callbacks_for_truth
from tests.reliability.modes import (
    ACCOUNT_LIMITS,
    CAMPAIGN_SIZE,
    JITTER,
    LONG,
    MODE,
    POLL_INTERVAL,
    RATES,
    SIZE,
)
from tests.stack import RedisServer, wait_for

# Long-only scenarios live in test_rel_long_*.py and are not collected in CI mode (an empty
# parametrization or a skip would count as a skipped test, which fails CI).
collect_ignore_glob = [] if LONG else ["test_rel_long_*.py"]


@pytest.fixture
def redis_server(redis_url: str) -> Iterator[RedisServer]:
    """A private Redis server (no persistence), so killing it disturbs no other test.
    Depends on ``redis_url`` so that, like every Redis test, it fails in CI without Redis."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def db(pg_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(pg_url, pool_pre_ping=True)
    yield engine
    engine.dispose()


def numbers_for(provider: str, count: int) -> list[str]:
    """Valid US numbers, distinct per provider (area 202, exchanges 3xx/4xx)."""
    series = 3 if provider == "plivo" else 4
    return [f"+1202{series}{i // 10000:02d}{i % 10000:04d}" for i in range(count)]


@dataclass
class Run:
    """One scenario run: what was done, for the oracle and the report."""

    stack: RelStack
    engine: sa.Engine
    name: str
    storm: Storm | None = None
    chaos: list[Chaos] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def scenario(
    tmp_path: Path,
    pg_url: str,
    redis_server: RedisServer,
    db: sa.Engine,
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., dict[str, Any]]]:
    stacks: list[RelStack] = []

    def run(
        name: str,
        *,
        chaos: Callable[[RelStack, RedisServer], list[Chaos]] = lambda st, rs: [],
        sandbox_faults: dict[str, Any] | None = None,
        web_env: dict[str, str] | None = None,
        worker_env: dict[str, str] | None = None,
        extra_env: dict[str, str] | None = None,
        quiet_timeout: float = 120.0,
        allowed_statuses: set[int] | None = None,
        seed: int = 11,
        poll_interval: float = POLL_INTERVAL,
    ) -> dict[str, Any]:
        st = RelStack.create(
            tmp_path / f"stack-{uuid.uuid4().hex[:6]}",
            {
                "DATABASE_URL": pg_url,
                "REDIS_URL": redis_server.url,
                "API_TOKEN": "reliability-token-0123456789abcdefghij",
                "POLL_INTERVAL_SECONDS": str(int(poll_interval)),
                "SWEEP_SECONDS": "2",
                "DRIFT_CHECK_SECONDS": "3600",
                "TELNYX_RATE_LIMIT_PER_SECOND": str(int(RATES["telnyx"])),
                "PLIVO_RATE_LIMIT_PER_SECOND": str(int(RATES["plivo"])),
                "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
                **(extra_env or {}),
            },
        )
        (tmp_path / "metrics").mkdir(exist_ok=True)
        stacks.append(st)
        started = time.monotonic()
        # 1. The carrier, as a subprocess; callbacks off: the storm below sends them.
        st.start_sandbox(seed=seed, delay=1.0, failure_ratio=0.2)
        st.sandbox(
            "POST",
            "config",
            {
                "callbacks_enabled": False,
                "telnyx_rate_limit": ACCOUNT_LIMITS["telnyx"][0],
                "telnyx_rate_window": ACCOUNT_LIMITS["telnyx"][1],
                "plivo_rate_limit": ACCOUNT_LIMITS["plivo"][0],
                "plivo_rate_window": ACCOUNT_LIMITS["plivo"][1],
                **(sandbox_faults or {}),
            },
        )
        # 2. The operator's requests, then the real processes send them to the carrier.
        with transaction(db) as s:
            for provider in ("telnyx", "plivo"):
                numbers = numbers_for(provider, getattr(SIZE, provider))
                for c in range(0, len(numbers), CAMPAIGN_SIZE):
                    link_numbers(
                        s,
                        provider,
                        f"REL{provider[0].upper()}{c // CAMPAIGN_SIZE:03d}",
                        [Entry(n) for n in numbers[c : c + CAMPAIGN_SIZE]],
                        source=Source.API,
                    )
        st.launch_web(workers=3)
        st.launch_worker("worker", concurrency=2)
        st.launch_beat("beat")
        st.launch_beat("beat2")  # two beats for the whole run: no double effect
        st.supervise()
        try:
            wait_for(
                lambda: len(st.sandbox("GET", "numbers")["numbers"]) == SIZE.numbers,
                600 if LONG else 240,
                "every link request reached the sandbox",
            )
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{_not_sent(st, db)}\n{st.logs()}") from None
        st.sandbox("POST", "settle")
        truth = st.sandbox("GET", "numbers")["numbers"]
        linked_in = time.monotonic() - started
        # Crash points only for the storm (a crash while sending link requests strands the
        # claimed batch for the claim lease; see docs/reliability.md, known limits).
        for proc_name, extra in (("web", web_env), ("worker", worker_env)):
            if extra:
                st.specs[proc_name].env |= extra
                st.terminate(proc_name)
                st.kills[f"{proc_name}_sigterm"] -= 1  # a reconfiguration, not chaos
        # 3. The storm: every callback 1-5 times, shuffled, 32 senders, retried until 2xx.
        storm = Storm(
            web_url=st.web_url,
            public_url=st.env["PUBLIC_URL"],
            telnyx_seed=bytes.fromhex(st.sandbox("GET", "config")["telnyx_seed"]),
            plivo_token=st.env["PLIVO_AUTH_TOKEN"],
            senders=32,
        )
        rng = random.Random(seed)
        items = storm.deliveries(callbacks_for_truth(truth), rng)
        storm_started = time.monotonic()
        with ExitStack() as stack_ctx:
            actions = [stack_ctx.enter_context(c) for c in chaos(st, redis_server)]
            storm.run(items, deadline=600)
        storm_took = time.monotonic() - storm_started
        # 4. Quiet, then the oracle.
        took, trace = oracle.wait_quiet(db, truth, quiet_timeout)
        elapsed = time.monotonic() - started
        counters = st.sandbox("GET", "counters")
        report = oracle.check(
            db,
            truth=truth,
            results=storm.results,
            counters=counters,
            poll_interval=poll_interval,
            elapsed=elapsed,
            rates=RATES,
            account_limits=ACCOUNT_LIMITS,
            jitter=JITTER,
        )
        if took < 0:
            report["problems"].append(f"not quiet {quiet_timeout}s after the storm")
        if allowed_statuses is not None:
            other = {
                int(k): v
                for k, v in report["http_status"].items()
                if int(k) not in allowed_statuses
            }
            if other:
                report["problems"].append(f"answers outside {sorted(allowed_statuses)}: {other}")
        report = {
            "numbers": SIZE.numbers,
            "poll_interval_s": poll_interval,
            "linking_s": round(linked_in, 1),
            "storm_s": round(storm_took, 1),
            "quiet_after_storm_s": took,
            "quiet_trace": trace[-12:],
            "kills": dict(st.kills),
            "restarts": dict(st.restarts),
            "exit_codes": dict(st.exit_codes),
            "crash_points_reached": st.crash_exits(),
            "chaos_actions": {c.name: c.done for c in actions},
            "chaos_errors": [e for c in actions for e in c.errors],
            **report,
        }
        for c in actions:
            if c.errors:
                report["problems"].append(f"chaos action failed: {c.errors[:3]}")
        oracle.record(name, MODE, report)
        return report

    yield run
    for st in stacks:
        st.stop()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(st.logs())


def _not_sent(st: RelStack, engine: sa.Engine) -> str:
    """What dlcsync says about the numbers the sandbox never received (a diagnosis)."""
    there = {(r["provider"], r["number"]) for r in st.sandbox("GET", "numbers")["numbers"]}
    with Session(engine) as s:
        links = [ln for ln in s.exec(select(Link)).all() if (ln.provider, ln.number) not in there]
    summary = Counter(
        (ln.provider, ln.state, ln.request_attempts, (ln.last_error or "")[:100]) for ln in links
    )
    ids = [ln.id for ln in links[:5]]
    with Session(engine) as s:
        history = s.exec(select(LinkEvent).where(col(LinkEvent.link_id).in_(ids))).all()
    return (
        f"{len(links)} links never reached the sandbox: "
        + "; ".join(f"{k}: {n}" for k, n in summary.most_common(10))
        + "\nhistory of some: "
        + "; ".join(f"{e.link_id} {e.from_state}->{e.to_state} {e.reason}" for e in history)
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep
