"""``python -m bench.adopt``: adopt 10,000 existing links over 50 campaigns on each provider.

The sandbox is preloaded with 5,000 Plivo and 5,000 Telnyx links (25 campaigns each, 50 in
all); ``worker.adopt.run_adopt`` then records them into an empty PostgreSQL database. Prints
the seconds per provider and in total (target: under 60 s, DESIGN §7) and checks one audit
row per link and that a second run records nothing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench.common import Figure, log, scratch_database

LINKS_PER_PROVIDER = 5_000
CAMPAIGNS_PER_PROVIDER = 25
TARGET_SECONDS = 60.0


def run(database_url: str, workdir: Path, quick: bool) -> tuple[list[Figure], dict[str, Any]]:
    """``make bench``'s step: the figure beside its target (the sandbox is the baseline)."""
    total, links_n, events_n, again = _adopt(database_url)
    detail = {"links": links_n, "audit_rows": events_n, "second_run_adopted": again}
    ok = total < TARGET_SECONDS and links_n == events_n == 2 * LINKS_PER_PROVIDER and again == 0
    figure = Figure(
        f"adopt {2 * LINKS_PER_PROVIDER:,} links / {2 * CAMPAIGNS_PER_PROVIDER} campaigns",
        total,
        "s",
        f"< {TARGET_SECONDS:g} s",
        ok,
        f"links {links_n}, audit rows {events_n}; second run adopted {again}",
        detail,
    )
    return [figure], {"adopt": detail}


def main() -> None:
    with scratch_database("dlcsync_bench_adopt") as url:
        total, links_n, events_n, again = _adopt(url)
    verdict = "PASS" if total < TARGET_SECONDS and links_n == events_n == 10_000 else "MISS"
    print(
        f"adopt 10,000 links / 50 campaigns (PostgreSQL): {total:.1f} s "
        f"(target < {TARGET_SECONDS:.0f} s) links={links_n} audit rows={events_n} "
        f"second run adopted={again} {verdict}"
    )


def _adopt(url: str) -> tuple[float, int, int, int]:
    """Preload the sandbox, adopt both providers into ``url``, then adopt again."""
    from models.db import make_engine
    from models.polling import Cadence
    from providers.plivo import PlivoClient, make_plivo_http
    from providers.telnyx import TelnyxClient, make_telnyx_http
    from sandbox import SandboxConfig, start_sandbox
    from worker.adopt import run_adopt

    handle = start_sandbox(
        SandboxConfig(port=0, plivo_rate_limit=0, telnyx_rate_limit=0, callbacks_enabled=False)
    )
    env = handle.env()
    try:
        for p, offset in (("plivo", 0), ("telnyx", LINKS_PER_PROVIDER)):
            links = [
                {
                    "number": f"+1202{2_000_000 + offset + i:07d}",
                    "campaign_id": f"{p[0].upper()}CAMP{i % CAMPAIGNS_PER_PROVIDER:03d}",
                }
                for i in range(LINKS_PER_PROVIDER)
            ]
            r = httpx.post(
                f"{handle.url}/_sandbox/preload", json={"provider": p, "links": links}, timeout=60
            )
            r.raise_for_status()
        clients = {
            "plivo": PlivoClient(
                make_plivo_http(
                    env["PLIVO_API_URL"], env["PLIVO_AUTH_ID"], env["PLIVO_AUTH_TOKEN"]
                ),
                env["PLIVO_AUTH_ID"],
                "http://127.0.0.1:9/webhooks/plivo",
            ),
            "telnyx": TelnyxClient(
                make_telnyx_http(env["TELNYX_API_URL"], env["TELNYX_API_KEY"]), page_size=100
            ),
        }
        engine = make_engine(url)
        cadence = Cadence()
        started = time.perf_counter()
        for name, client in clients.items():
            t0 = time.perf_counter()
            summary = run_adopt(engine, client, cadence=cadence)
            log(f"  {name}: adopted {summary.adopted:,} in {time.perf_counter() - t0:.1f} s")
        total = time.perf_counter() - started
        with engine.connect() as conn:
            links_n = conn.execute(sa.text("SELECT count(*) FROM links")).scalar_one()
            events_n = conn.execute(sa.text("SELECT count(*) FROM link_events")).scalar_one()
        again = sum(run_adopt(engine, c, cadence=cadence).adopted for c in clients.values())
        engine.dispose()
        return total, int(links_n), int(events_n), again
    finally:
        handle.stop()


if __name__ == "__main__":
    main()
