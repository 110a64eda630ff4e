"""1. Webhook ingest: signed Telnyx callbacks through gunicorn into PostgreSQL (+ Redis enqueue),
against a bare Flask handler doing one INSERT (bench/baseline_app.py) under the same gunicorn
settings, in the same run.

Throughput: closed loop (wrk, cycling through pre-signed bodies). Latency: open loop at 80 % of
dlcsync's own throughput, the baseline at the same rate beside it (asyncio generator, latency
from the scheduled send time).
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bench import loadgen
from bench.common import (
    BASELINE_TABLE_DDL,
    REDIS_URL,
    Figure,
    RssSampler,
    group_cpu_seconds,
    group_hwm_mb,
    log,
)
from tests.stack import Stack

WEB_WORKERS = 2
CONNECTIONS = 8


class Signer:
    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.from_private_bytes(os.urandom(32))
        raw = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_key = base64.b64encode(raw).decode()

    def requests(self, n: int, tag: str) -> list[loadgen.Req]:
        """``n`` distinct, freshly signed deliveries (telnyx-timestamp must be within 300 s)."""
        ts = str(int(time.time()))
        at = datetime.now(UTC).isoformat()
        out = []
        for i in range(n):
            number = f"+1202{(i % 10_000_000):07d}"
            body = json.dumps(
                {
                    "data": {
                        "event_type": "10dlc.phone_number.update",
                        "id": f"{tag}-{uuid.uuid4()}",
                        "occurred_at": at,
                        "payload": {
                            "campaignId": f"CBENCH{i % 500:04d}",
                            "phoneNumber": number,
                            "status": "success",
                            "type": "ASSIGNMENT",
                            "reasons": [],
                        },
                        "record_type": "event",
                    },
                    "meta": {"attempt": 1},
                },
                separators=(",", ":"),
            ).encode()
            sig = base64.b64encode(self.key.sign(ts.encode() + b"|" + body)).decode()
            headers = {
                "content-type": "application/json",
                "telnyx-timestamp": ts,
                "telnyx-signature-ed25519": sig,
            }
            out.append(loadgen.Req("/webhooks/telnyx", headers, body))
        return out


def run(database_url: str, workdir: Path, quick: bool) -> tuple[list[Figure], dict[str, Any]]:
    seconds = 9.0 if quick else 24.0
    signer = Signer()
    redis.Redis.from_url(REDIS_URL).flushdb()
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text(BASELINE_TABLE_DDL))
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "TELNYX_PUBLIC_KEY": signer.public_key,
        "API_TOKEN": "bench-token-0123456789abcdefghijklmnopq",
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
    }
    (workdir / "metrics").mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = {}

    # Both servers run side by side (an idle one costs nothing) and the closed-loop runs
    # alternate, baseline then dlcsync, so load from others on the shared machine hits both.
    base = Stack.create(workdir / "baseline", env)
    dl = Stack.create(workdir / "dlcsync-web", env)
    rounds = 3
    per_round = seconds / rounds
    b_runs: list[loadgen.Result] = []
    d_runs: list[loadgen.Result] = []
    #: Web CPU (gunicorn master and workers) in ms per answered request, per closed-loop run.
    cpu_ms: dict[str, list[float]] = {"baseline": [], "dlcsync": []}
    try:
        base_web = base.start_web(
            workers=WEB_WORKERS, app="bench.baseline_app:app", name="baseline"
        )
        web = dl.start_web(workers=WEB_WORKERS)
        pids = {"baseline": base_web.pid, "dlcsync": web.pid}
        with RssSampler({"web": web.pid}, step=0.5) as rss:
            for st in (base, dl):  # warm up
                loadgen.closed_loop(st.web_url, signer.requests(3000, "warm"), 2, CONNECTIONS)
            for r in range(rounds):
                for st, runs, tag in ((base, b_runs, "baseline"), (dl, d_runs, "dlcsync")):
                    reqs = signer.requests(int(per_round * 4000), f"{tag}{r}")
                    cpu0 = group_cpu_seconds(pids[tag])
                    runs.append(loadgen.closed_loop(st.web_url, reqs, per_round, CONNECTIONS))
                    spent = group_cpu_seconds(pids[tag]) - cpu0
                    cpu_ms[tag].append(1000 * spent / max(runs[-1].ok, 1))
                    log(
                        f"  {tag} closed loop {r + 1}/{rounds}: {runs[-1].rps:.0f}/s, "
                        f"web CPU {cpu_ms[tag][-1]:.2f} ms per request"
                    )
            b_rps = statistics.median(x.rps for x in b_runs)
            d_rps = statistics.median(x.rps for x in d_runs)
            # Latency at 80 % of dlcsync's own capacity (DESIGN §7), and the baseline's at
            # the same rate beside it.
            rate = 0.8 * d_rps
            d_open = loadgen.open_loop(
                dl.web_url, signer.requests(int(rate * seconds) + 10, "do"), rate, seconds
            )
            log(f"  dlcsync: open loop at 80% of its own rate {d_open.summary()}")
            b_open = loadgen.open_loop(
                base.web_url, signer.requests(int(rate * seconds) + 10, "bo"), rate, seconds
            )
            log(f"  baseline: open loop at the same rate {b_open.summary()}")
        extra["web_peak_rss_mb"] = rss.peak("web")
        extra["web_hwm_mb"] = group_hwm_mb(web.pid)
    finally:
        dl.stop()
        base.stop()
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM inbox")).scalar_one()
        queued = redis.Redis.from_url(REDIS_URL).llen("dlcsync")
    engine.dispose()
    ratio = d_rps / b_rps if b_rps else 0.0
    b_cpu = statistics.median(cpu_ms["baseline"])
    d_cpu = statistics.median(cpu_ms["dlcsync"])
    p99 = loadgen.percentile(d_open.latencies_ms, 99)
    p50 = loadgen.percentile(d_open.latencies_ms, 50)
    detail = {
        "baseline_closed_runs": [x.summary() for x in b_runs],
        "dlcsync_closed_runs": [x.summary() for x in d_runs],
        "per_round_ratios": [d.rps / b.rps for b, d in zip(b_runs, d_runs, strict=True)],
        "web_cpu_ms_per_request": cpu_ms,
        "baseline_open": b_open.summary(),
        "dlcsync_open": d_open.summary(),
        "inbox_rows_stored": stored,
        "tasks_enqueued": queued,
        "gunicorn_workers": WEB_WORKERS,
        "load_generator": d_runs[0].tool + " (throughput); " + d_open.tool + " (latency)",
    }
    figures = [
        Figure(
            "ingest throughput ratio",
            ratio,
            "x",
            ">= 0.8",
            ratio >= 0.8,
            f"bare Flask+INSERT {b_rps:.0f}/s; dlcsync {d_rps:.0f}/s (median of 3)",
            detail,
        ),
        Figure(
            "ingest p99 @80% of own capacity",
            p99,
            "ms",
            "< 50 ms",
            p99 < 50 and d_open.errors == 0,
            f"{rate:.0f}/s; bare Flask+INSERT at that rate: p99 "
            f"{loadgen.percentile(b_open.latencies_ms, 99):.1f} ms",
            {"p50_ms": p50, "errors": d_open.errors},
        ),
        Figure(
            "ingest web CPU per request",
            b_cpu / d_cpu if d_cpu else 0.0,
            "x",
            "-",
            None,
            f"bare Flask+INSERT {b_cpu:.2f} ms; dlcsync {d_cpu:.2f} ms (median of 3; the "
            "steadier figure on a shared machine)",
        ),
        Figure(
            "ingest p50 @80% of own capacity",
            p50,
            "ms",
            "-",
            None,
            f"bare Flask+INSERT at that rate: p50 "
            f"{loadgen.percentile(b_open.latencies_ms, 50):.1f} ms",
        ),
    ]
    return figures, extra
