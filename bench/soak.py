"""5. Memory: RSS of the web and worker process groups over a soak (10 min; quick: 1 min).

The real web (gunicorn, 2 workers) and worker (celery, --concurrency 1) run while signed
Telnyx callbacks arrive at a fixed rate (fresh signatures every 60 s); the summed RSS of each
process group is sampled every 2 s. Start and end are the means of the first and last tenth;
the figure is the least-squares slope over the second half (the first minutes fill caches).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import redis

from bench import loadgen
from bench.common import REDIS_URL, Figure, RssSampler, log, slope_per_min
from bench.ingest import Signer
from tests.stack import Stack

RATE = 100.0  # deliveries per second: steady work for both processes
FLAT_MB_PER_MIN = 0.5


def run(database_url: str, workdir: Path, seconds: float) -> tuple[list[Figure], dict[str, Any]]:
    redis.Redis.from_url(REDIS_URL).flushdb()
    signer = Signer()
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "TELNYX_PUBLIC_KEY": signer.public_key,
        "API_TOKEN": "bench-token-0123456789abcdefghijklmnopq",  # check_api_token: >= 32
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / "soak-metrics"),
    }
    (workdir / "soak-metrics").mkdir(parents=True, exist_ok=True)
    stack = Stack.create(workdir / "soak", env)
    figures: list[Figure] = []
    detail: dict[str, Any] = {}
    try:
        web = stack.start_web(workers=2)
        worker = stack.start_worker(concurrency=1)
        sent = ok = 0
        with RssSampler({"web": web.pid, "worker": worker.pid}, step=2.0) as rss:
            end = time.monotonic() + seconds
            while (left := end - time.monotonic()) > 1:
                chunk = min(60.0, left)
                res = loadgen.open_loop(
                    stack.web_url, signer.requests(int(RATE * chunk) + 5, "soak"), RATE, chunk
                )
                sent, ok = sent + res.sent, ok + res.ok
        for name in ("web", "worker"):
            samples = rss.samples[name]
            tenth = max(1, len(samples) // 10)
            start_mb = statistics.mean(m for _, m in samples[:tenth])
            end_mb = statistics.mean(m for _, m in samples[-tenth:])
            # Caches (SQLAlchemy's compiled statements, imports) fill during the first minutes;
            # a leak keeps growing, so the figure is the slope over the second half.
            slope = slope_per_min(samples[len(samples) // 2 :])
            detail[name] = {
                "start_mb": start_mb,
                "end_mb": end_mb,
                "peak_mb": rss.peak(name),
                "slope_mb_per_min": slope,
                "slope_whole_run_mb_per_min": slope_per_min(samples[tenth:]),
                "samples": [(round(t, 1), round(m, 1)) for t, m in samples],
            }
            figures.append(
                Figure(
                    f"soak RSS slope, {name}",
                    slope,
                    "MB/min",
                    f"flat (< {FLAT_MB_PER_MIN} MB/min)",
                    slope < FLAT_MB_PER_MIN,
                    f"{start_mb:.0f} MB -> {end_mb:.0f} MB over {seconds / 60:.0f} min",
                    {k: v for k, v in detail[name].items() if k != "samples"},
                )
            )
            log(f"  soak {name}: {start_mb:.1f} -> {end_mb:.1f} MB, slope {slope:.3f} MB/min")
        detail["deliveries"] = {"sent": sent, "ok": ok, "rate_per_s": RATE}
    finally:
        stack.stop()
    return figures, {"soak": detail}
