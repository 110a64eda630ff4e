"""``python -m bench [--quick] [--only NAME ...] [--drop-scale-db]`` (= ``make bench``).

Prints each figure beside its same-run baseline and its target (PASS/MISS), and writes
bench/results/<timestamp>.json and bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import RESULTS, Figure, log, scratch_database

BENCHES = ("ingest", "apply", "kill", "polling", "bulk", "adopt", "scale", "soak")


def _machine() -> dict[str, Any]:
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "cores": os.cpu_count(),
        "mem_gib": round(mem_kb / 1024**2, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def _memory_figures(extras: dict[str, Any]) -> list[Figure]:
    out = []
    if "web_peak_rss_mb" in extras:
        out.append(
            Figure(
                "peak RSS, web (during 1)",
                extras["web_peak_rss_mb"],
                "MB",
                "-",
                None,
                f"gunicorn master + 2 workers; VmHWM sum {extras['web_hwm_mb']:.0f} MB",
            )
        )
    if "worker_memory" in extras:
        mem = extras["worker_memory"]
        peak = max(v["peak_rss_mb"] for v in mem.values())
        out.append(
            Figure(
                "peak RSS, worker (during 2)",
                peak,
                "MB",
                "-",
                None,
                "celery master + 1 child; "
                + ", ".join(f"{k} {v['hwm_mb']:.0f}" for k, v in mem.items())
                + " MB VmHWM",
            )
        )
    return out


def _table(figures: list[Figure]) -> str:
    head = ["figure", "value", "baseline / context (same run)", "target", "result"]
    rows = [head] + [f.row() for f in figures]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = []
    for n, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes, short runs (< 5 min)")
    ap.add_argument("--only", nargs="+", choices=BENCHES, help="run only these benchmarks")
    ap.add_argument("--drop-scale-db", action="store_true", help="regenerate the scale database")
    ap.add_argument("--soak-seconds", type=float, help="soak length (default 600; quick 60)")
    args = ap.parse_args(argv)
    chosen = args.only or list(BENCHES)
    soak_seconds = args.soak_seconds or (60.0 if args.quick else 600.0)
    workdir = Path(tempfile.mkdtemp(prefix="dlcsync-bench-"))
    started = time.monotonic()
    figures: list[Figure] = []
    extras: dict[str, Any] = {}
    failures: dict[str, str] = {}

    def step(name: str, fn: Any) -> None:
        if name not in chosen:
            return
        log(f"{name} ...")
        t = time.monotonic()
        try:
            figs, extra = fn()
            figures.extend(figs)
            extras.update(extra)
        except Exception as exc:
            traceback.print_exc()
            failures[name] = f"{type(exc).__name__}: {exc}"
        log(f"{name} done in {time.monotonic() - t:.0f}s")

    def in_db(module: Any, prefix: str, *a: Any) -> Any:
        def run() -> Any:
            with scratch_database(prefix) as url:
                return module.run(url, workdir, *a)

        return run

    from bench import adopt, apply, bulk, ingest, kill, polling, scale, soak

    step("ingest", in_db(ingest, "dlcsync_bench_ingest", args.quick))
    step("apply", in_db(apply, "dlcsync_bench_apply", args.quick))
    step("kill", in_db(kill, "dlcsync_bench_kill", args.quick))
    step("polling", in_db(polling, "dlcsync_bench_poll", args.quick))
    step("bulk", in_db(bulk, "dlcsync_bench_bulk", args.quick))
    step("adopt", in_db(adopt, "dlcsync_bench_adopt", args.quick))
    step("scale", lambda: scale.run(args.drop_scale_db, args.quick))
    step("soak", in_db(soak, "dlcsync_bench_soak", soak_seconds))
    figures.extend(_memory_figures(extras))
    elapsed = time.monotonic() - started

    print()
    print(_table(figures))
    for name, problem in failures.items():
        print(f"ERROR in {name}: {problem}")
    print(
        f"\n{len(figures)} figures in {elapsed / 60:.1f} min ({'quick' if args.quick else 'full'})"
    )

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    doc = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "machine": _machine(),
        "seconds": round(elapsed, 1),
        "figures": [f.as_json() for f in figures],
        "errors": failures,
        "extras": extras,
    }
    text = json.dumps(doc, indent=2, default=str)
    (RESULTS / f"{stamp}.json").write_text(text)
    (RESULTS / "latest.json").write_text(text)
    print(f"wrote {RESULTS / (stamp + '.json')} and latest.json")
    shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
