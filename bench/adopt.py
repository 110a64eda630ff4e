"""``python -m bench.adopt [--quick]``: adopt existing links over many campaigns from the sandbox.

Full: 100,000 links (50,000 Plivo and 50,000 Telnyx, 250 campaigns each, 500 in all); quick:
10,000 links over 50 campaigns. The sandbox (over real HTTP, no rate limit) is preloaded before
the clock starts; ``worker.adopt.run_adopt`` then records both accounts into an empty
PostgreSQL database, timed alone (listing and recording). Prints seconds and links per second
beside DESIGN §7's target scaled to the size (under 60 s per 10,000 links), checks one audit
row per link, and times a second run that must adopt nothing.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench.common import Figure, log, scratch_database

#: DESIGN §7: adopting 10,000 existing links < 60 s; scaled linearly to the size measured.
TARGET_SECONDS_PER_10K = 60.0
FULL = (50_000, 250)  # links and campaigns per provider
QUICK = (5_000, 25)
#: Links per preload request (the sandbox's control API takes a JSON list).
PRELOAD_BATCH = 10_000


@dataclass(frozen=True)
class Result:
    links: int  # asked for, both providers
    campaigns: int
    seconds: float  # the first run, both providers
    per_provider: dict[str, float]
    links_n: int  # rows in links
    events_n: int  # rows in link_events
    again_seconds: float  # the second run
    again_adopted: int

    @property
    def target(self) -> float:
        return TARGET_SECONDS_PER_10K * self.links / 10_000

    @property
    def ok(self) -> bool:
        return (
            self.seconds < self.target
            and self.links_n == self.events_n == self.links
            and self.again_adopted == 0
        )


def run(database_url: str, workdir: Path, quick: bool) -> tuple[list[Figure], dict[str, Any]]:
    """``make bench``'s step: the figures beside their targets (the sandbox is the baseline)."""
    per_provider, campaigns = QUICK if quick else FULL
    r = _adopt(database_url, per_provider, campaigns)
    detail = {
        "links": r.links_n,
        "audit_rows": r.events_n,
        "seconds": round(r.seconds, 2),
        "links_per_second": round(r.links / r.seconds, 1),
        "per_provider_seconds": {k: round(v, 2) for k, v in r.per_provider.items()},
        "second_run_seconds": round(r.again_seconds, 2),
        "second_run_adopted": r.again_adopted,
    }
    first = Figure(
        f"adopt {r.links:,} links / {r.campaigns} campaigns",
        r.seconds,
        "s",
        f"< {r.target:g} s (60 s per 10,000)",
        r.ok,
        f"{r.links / r.seconds:,.0f} links/s (target >= {10_000 / TARGET_SECONDS_PER_10K:.0f}); "
        + ", ".join(f"{k} {v:.1f} s" for k, v in r.per_provider.items())
        + f"; links {r.links_n}, audit rows {r.events_n}",
        detail,
    )
    second = Figure(
        f"adopt again, {r.links:,} links all known",
        r.again_seconds,
        "s",
        "adopts 0",
        r.again_adopted == 0,
        f"adopted {r.again_adopted}",
    )
    return [first, second], {"adopt": detail}


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.adopt", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="10,000 links instead of 100,000")
    per_provider, campaigns = QUICK if ap.parse_args().quick else FULL
    with scratch_database("dlcsync_bench_adopt") as url:
        r = _adopt(url, per_provider, campaigns)
    print(
        f"adopt {r.links:,} links / {r.campaigns} campaigns (PostgreSQL): {r.seconds:.1f} s, "
        f"{r.links / r.seconds:,.0f} links/s (target < {r.target:.0f} s) links={r.links_n} "
        f"audit rows={r.events_n}; second run {r.again_seconds:.1f} s adopted={r.again_adopted} "
        f"{'PASS' if r.ok else 'MISS'}"
    )


def _adopt(url: str, per_provider: int, campaigns: int) -> Result:
    """Preload the sandbox, adopt both providers into ``url`` (timed), then adopt again."""
    from models.db import make_engine
    from models.polling import Cadence
    from providers.plivo import PlivoClient, make_plivo_http
    from providers.telnyx import SPEC as TELNYX
    from providers.telnyx import TelnyxClient, make_telnyx_http
    from sandbox import SandboxConfig, start_sandbox
    from worker.adopt import run_adopt

    handle = start_sandbox(
        SandboxConfig(port=0, plivo_rate_limit=0, telnyx_rate_limit=0, callbacks_enabled=False)
    )
    env = handle.env()
    try:
        t0 = time.perf_counter()
        for p, offset in (("plivo", 0), ("telnyx", per_provider)):
            links = [
                {
                    "number": f"+1202{2_000_000 + offset + i:07d}",
                    "campaign_id": f"{p[0].upper()}CAMP{i % campaigns:03d}",
                }
                for i in range(per_provider)
            ]
            for start in range(0, len(links), PRELOAD_BATCH):
                r = httpx.post(
                    f"{handle.url}/_sandbox/preload",
                    json={"provider": p, "links": links[start : start + PRELOAD_BATCH]},
                    timeout=120,
                )
                r.raise_for_status()
        engine = make_engine(url)
        log(f"  sandbox preloaded: {2 * per_provider:,} links in {time.perf_counter() - t0:.1f} s")
        clients = {
            "plivo": PlivoClient(
                make_plivo_http(
                    env["PLIVO_API_URL"], env["PLIVO_AUTH_ID"], env["PLIVO_AUTH_TOKEN"]
                ),
                env["PLIVO_AUTH_ID"],
                "http://127.0.0.1:9/webhooks/plivo",
            ),
            "telnyx": TelnyxClient(
                make_telnyx_http(env["TELNYX_API_URL"], env["TELNYX_API_KEY"]),
                page_size=TELNYX.page_size,
            ),
        }
        cadence = Cadence()
        per: dict[str, float] = {}
        for name, client in clients.items():
            t0 = time.perf_counter()
            summary = run_adopt(engine, client, cadence=cadence)
            per[name] = time.perf_counter() - t0
            log(f"  {name}: adopted {summary.adopted:,} in {per[name]:.1f} s")
        with engine.connect() as conn:
            links_n = conn.execute(sa.text("SELECT count(*) FROM links")).scalar_one()
            events_n = conn.execute(sa.text("SELECT count(*) FROM link_events")).scalar_one()
        t0 = time.perf_counter()
        again = sum(run_adopt(engine, c, cadence=cadence).adopted for c in clients.values())
        again_seconds = time.perf_counter() - t0
        log(f"  second run: adopted {again:,} in {again_seconds:.1f} s")
        engine.dispose()
        return Result(
            links=2 * per_provider,
            campaigns=2 * campaigns,
            seconds=sum(per.values()),
            per_provider=per,
            links_n=int(links_n),
            events_n=int(events_n),
            again_seconds=again_seconds,
            again_adopted=again,
        )
    finally:
        handle.stop()


if __name__ == "__main__":
    main()
