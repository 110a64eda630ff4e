"""/metrics under several gunicorn workers and another process (as the Celery worker is):
prometheus-client's multiprocess mode, set up by ``webhooks.gunicorn_conf`` as the Procfile
runs it. Every scrape, whichever worker answers, shows the totals of every process, and a
worker that dies keeps its counts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.webhooks.web.conftest import TELNYX_PUBLIC, TOKEN, samples, value

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def gunicorn(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[str, Path, dict[str, str], int]]:
    port = _free_port()
    metrics_dir = tmp_path / "metrics"  # gunicorn_conf creates it
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")} | {
        "DATABASE_URL": sqlite_url,
        "API_TOKEN": TOKEN,
        "TELNYX_PUBLIC_KEY": TELNYX_PUBLIC,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("REDIS_URL", None)
    log = (tmp_path / "gunicorn.log").open("wb")
    proc = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "--config",
            "python:webhooks.gunicorn_conf",
            "webhooks.wsgi:app",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "3",
            "--timeout",
            "30",
        ],
        cwd=tmp_path,  # the embedded broker folder goes under tmp_path/var
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "gunicorn.log").read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.1)
        yield url, metrics_dir, env, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _post_unsigned(url: str) -> int:
    with httpx.Client() as c:  # a new connection each time: spreads over the workers
        return c.post(f"{url}/webhooks/telnyx", content=b"{}").status_code


def test_counters_are_totals_over_every_worker_and_process(
    gunicorn: tuple[str, Path, dict[str, str], int],
) -> None:
    url, metrics_dir, env, master = gunicorn
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: _post_unsigned(url), range(24)))
    assert statuses == [401] * 24

    # Another process of the same host (a Celery worker) counts into the same directory.
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from common.metrics import INBOX_OUTCOMES as C; C.labels('telnyx', 'applied').inc(5)",
        ],
        env=env,
        cwd=ROOT,
        check=True,
    )

    def check() -> None:
        for _ in range(6):  # several scrapes: several workers answer
            r = httpx.get(f"{url}/metrics", timeout=5)
            assert r.status_code == 200
            page = samples(r.text)
            assert value(page, "dlcsync_webhook_deliveries_total",
                         provider="telnyx", outcome="unauthorized") == 24  # fmt: skip
            assert value(page, "dlcsync_inbox_outcomes_total",
                         provider="telnyx", outcome="applied") == 5  # fmt: skip
            assert value(page, "dlcsync_database_up") == 1

    check()
    writers = sorted(metrics_dir.glob("counter_*.db"))
    assert len(writers) >= 2, writers  # at least one web worker and the other process

    # A worker that dies keeps its counts (gunicorn's child_exit marks it dead; the master
    # starts another).
    ours = [pid for pid in (int(p.stem.split("_")[1]) for p in writers) if _parent(pid) == master]
    assert ours, "no live gunicorn worker wrote a counter file"
    os.kill(ours[0], signal.SIGTERM)
    time.sleep(1.0)
    check()


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])
