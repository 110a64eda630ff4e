"""3. Polling efficiency: provider requests per reconciled number, and time to converge.

Links are inserted directly in PROCESSING (half Plivo, half Telnyx campaigns, every campaign's
numbers due together, campaigns one after another), the in-process sandbox is seeded to the
same truth (every number linked, COMPLETED), every request answers 50 ms late (the sandbox's
hang switch: ratio 1.0, 0.05 s, answer). The Reconciler runs in-process until nothing is due;
the sandbox's counters give the requests.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import Figure, log
from common.settings import Settings
from models.polling import Cadence
from providers.registry import SPECS, build_clients
from sandbox import start_sandbox
from worker.ratelimit import LocalRateLimiter
from worker.reconcile import Reconciler, until_quiet

LATENCY = 0.05
RATES = {"plivo": 50.0, "telnyx": 15.0}  # under the sandbox's limits (60/s, 20/s)


def _numbers(n_links: int, n_campaigns: int) -> list[tuple[str, str, str, int]]:
    """(provider, number, campaign, campaign index), campaigns alternating provider."""
    per = n_links // n_campaigns
    out = []
    for c in range(n_campaigns):
        provider = "plivo" if c % 2 == 0 else "telnyx"
        for k in range(per):
            out.append((provider, f"+1303{c:03d}{k:04d}", f"CPOLL{c:04d}", c))
    return out


def _count(counters: dict[str, Any]) -> dict[str, int]:
    out = {}
    for provider, endpoints in counters.get("requests", {}).items():
        total = 0
        for methods in endpoints.values():
            for statuses in methods.values():
                total += sum(statuses.values())
        out[provider] = total
    return out


def run(database_url: str, workdir: Path, quick: bool) -> tuple[list[Figure], dict[str, Any]]:
    n_links, n_campaigns = (10_000, 50) if quick else (100_000, 500)
    rows = _numbers(n_links, n_campaigns)
    now = datetime.now(UTC)
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        with (
            raw.cursor() as cur,
            cur.copy(  # type: ignore[union-attr]
                "COPY links (provider, number, campaign_id, state, generation, direction,"
                " drift, observed_at, generation_started_at, next_poll_at, poll_attempts,"
                " request_attempts, needs_check, created_at, updated_at) FROM STDIN"
            ) as copy,
        ):
            t = now - timedelta(hours=1)
            for provider, number, campaign, c in rows:
                due = now - timedelta(seconds=n_campaigns - c)  # a campaign's numbers together
                copy.write_row(
                    (
                        provider,
                        number,
                        campaign,
                        "PROCESSING",
                        1,
                        "link",
                        False,
                        t,
                        t,
                        due,
                        0,
                        0,
                        False,
                        t,
                        t,
                    )
                )
        conn.execute(sa.text("ANALYZE links"))
    sandbox = start_sandbox(
        delay=0.0,
        seed=3,
        callbacks_enabled=False,
        hang_ratio=1.0,
        hang_seconds=LATENCY,
        hang_mode="answer",
    )
    try:
        for provider, number, campaign, _ in rows:
            sandbox.carrier.drift(provider, number, "move", campaign)
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            database_url=database_url,
            **{k.lower(): v for k, v in sandbox.env().items()},
            plivo_rate_limit_per_second=RATES["plivo"],
            telnyx_rate_limit_per_second=RATES["telnyx"],
        )
        clients = build_clients(
            settings, limiters={p: LocalRateLimiter(r) for p, r in RATES.items()}
        )
        before = _count(sandbox.counters())
        reconciler = Reconciler(engine, clients, Cadence(interval=60))
        started = time.monotonic()
        stats = until_quiet(reconciler, max_rounds=100_000)
        elapsed = time.monotonic() - started
        after = _count(sandbox.counters())
        counters = sandbox.counters()
    finally:
        sandbox.stop()
    with engine.connect() as conn:
        states = dict(
            conn.execute(sa.text("SELECT state, count(*) FROM links GROUP BY state")).all()
        )
    engine.dispose()
    requests = {p: after.get(p, 0) - before.get(p, 0) for p in after}
    per_provider_numbers = {p: sum(1 for r in rows if r[0] == p) for p in ("plivo", "telnyx")}
    converged = states.get("COMPLETED", 0)
    total_req = sum(requests.values())
    per_number = total_req / max(converged, 1)
    log(f"  polling: {requests} requests for {converged} numbers in {elapsed:.1f}s; {states}")
    detail = {
        "links": n_links,
        "campaigns": n_campaigns,
        "due_per_campaign": n_links // n_campaigns,
        "requests": requests,
        "requests_per_number_by_provider": {
            p: requests.get(p, 0) / per_provider_numbers[p] for p in per_provider_numbers
        },
        "states_after": states,
        "seconds_to_converge": elapsed,
        "reconciler_stats": {
            "claimed": stats.claimed,
            "requests_counted_by_reconciler": stats.requests_sent,
            "applied": stats.applied,
            "errors": stats.errors,
        },
        "sandbox_faults": counters.get("faults"),
        "sandbox_accounts": counters.get("accounts"),
        "latency_per_request_s": LATENCY,
        "rate_limits_per_s": RATES,
    }
    return [
        Figure(
            "polling requests per number",
            per_number,
            "req",
            "<= 0.05",
            per_number <= 0.05 and converged == n_links,
            f"{n_links} links, {n_campaigns} campaigns; per-number GET = 1.0",
            detail,
        ),
        *(
            Figure(
                f"polling requests per number, {p}",
                requests.get(p, 0) / per_provider_numbers[p],
                "req",
                "<= 0.05",
                requests.get(p, 0) / per_provider_numbers[p] <= 0.05,
                f"page size {SPECS[p].page_size}; {n_links // n_campaigns} due per campaign",
            )
            for p in ("plivo", "telnyx")
        ),
        Figure(
            "polling time to converge",
            elapsed,
            "s",
            "-",
            None,
            f"{converged}/{n_links} COMPLETED; 50 ms per request",
        ),
    ], {}
