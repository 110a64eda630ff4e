"""``python -m bench.profile ingest|apply [--seconds N]``: py-spy on the process under load.

Runs the same set-up as the benchmark, records the web (gunicorn workers) or worker (celery
child) with ``py-spy record --format raw`` (collapsed stacks) and prints the functions with
the most samples (own and inclusive). Needs py-spy (test extras) and ptrace rights.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import redis
import sqlalchemy as sa

from bench import loadgen
from bench.apply import SWEEP_BATCH, _seed
from bench.common import REDIS_URL, scratch_database
from bench.ingest import Signer
from common.settings import Settings
from tests.stack import Stack
from worker.celery_app import PROCESS_INBOX, create_celery


def _pyspy(pid: int, seconds: int, out: Path) -> subprocess.Popen[bytes]:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--duration",
            str(seconds),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )


def summarize(raw: Path, top: int = 25) -> str:
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = [
            f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1]
            for f in stack.split(";")
        ]
        if frames:
            own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    lines = [f"{total} samples", "own time:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines.append("inclusive (dlcsync / sqlalchemy / kombu / celery frames):")
    keep = (
        "models",
        "worker",
        "webhooks",
        "providers",
        "sqlalchemy",
        "kombu",
        "celery",
        "psycopg",
        "structlog",
        "prometheus",
        "redis",
        "flask",
        "werkzeug",
        "crypto",
    )
    for f, n in incl.most_common(400):
        if any(k in f for k in keep):
            lines.append(f"  {100 * n / total:5.1f}%  {f}")
            if len(lines) > 2 * top + 10:
                break
    return "\n".join(lines)


def profile_ingest(seconds: int, out: Path) -> None:
    signer = Signer()
    with scratch_database("dlcsync_bench_prof") as url, tempfile.TemporaryDirectory() as d:
        redis.Redis.from_url(REDIS_URL).flushdb()
        env = {
            "DATABASE_URL": url,
            "REDIS_URL": REDIS_URL,
            "TELNYX_PUBLIC_KEY": signer.public_key,
            "PROMETHEUS_MULTIPROC_DIR": d,
        }
        stack = Stack.create(Path(d) / "web", env)
        try:
            web = stack.start_web(workers=2)
            spy = _pyspy(web.pid, seconds, out)
            loadgen.closed_loop(stack.web_url, signer.requests(seconds * 2000, "p"), seconds, 8)
            spy.wait(seconds + 30)
        finally:
            stack.stop()


def profile_apply(seconds: int, out: Path) -> None:
    with scratch_database("dlcsync_bench_prof") as url, tempfile.TemporaryDirectory() as d:
        redis.Redis.from_url(REDIS_URL).flushdb()
        engine = sa.create_engine(url)
        ids = _seed(engine, 4000, "309")
        celery = create_celery(Settings(_env_file=None, database_url=url, redis_url=REDIS_URL))  # type: ignore[call-arg]
        for start in range(0, len(ids), SWEEP_BATCH):
            celery.send_task(PROCESS_INBOX, args=[ids[start : start + SWEEP_BATCH]])
        stack = Stack.create(Path(d) / "w", {"DATABASE_URL": url, "REDIS_URL": REDIS_URL})
        try:
            worker = stack.start_worker(concurrency=1, app="bench.noop_tasks")
            spy = _pyspy(worker.pid, seconds, out)
            spy.wait(seconds + 30)
        finally:
            stack.stop()
            engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.profile")
    ap.add_argument("what", choices=["ingest", "apply"])
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    out = Path(tempfile.mkdtemp()) / f"{args.what}.txt"
    {"ingest": profile_ingest, "apply": profile_apply}[args.what](args.seconds, out)
    print(summarize(out))
    print(f"(collapsed stacks: {out})")


if __name__ == "__main__":
    main()
