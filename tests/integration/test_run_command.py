"""The newcomer's first run: `dlcsync run` on embedded defaults, from an empty directory."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.stack import free_port, wait_for

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


def states(db: Path) -> dict[str, int]:
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT state, count(*) FROM links GROUP BY state")).all()
    engine.dispose()
    return {state: count for state, count in rows}


def _count(db: Path, sql: str) -> int:
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        n = int(conn.execute(sa.text(sql)).scalar_one())
    engine.dispose()
    return n


def test_run_starts_everything_links_samples_and_stops_cleanly(tmp_path: Path) -> None:
    port, sandbox_port = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            (
                "DATABASE_URL",
                "REDIS_URL",
                "PLIVO_",
                "TELNYX_",
                "API_TOKEN",
                "PUBLIC_URL",
                "EVENT_WEBHOOK_",
                "DLCSYNC_",
                "PYTEST",
            )
        )
    }
    out = (tmp_path / "run.out").open("wb")
    proc = subprocess.Popen(
        [str(BIN / "dlcsync"), "run", "--port", str(port), "--sandbox-port", str(sandbox_port)],
        cwd=tmp_path,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log = tmp_path / "run.out"
    try:
        wait_for(
            lambda: b"dlcsync is running" in log.read_bytes(),
            90,
            f"the run command\n{log.read_text(errors='replace')}",
        )
        text = log.read_text()
        token = re.search(r"token: (\S+)\)", text).group(1)  # type: ignore[union-attr]
        assert "requested links for 60 sample numbers" in text
        db = tmp_path / "var" / "dlcsync.db"
        # Sample links reach final states through the embedded broker, worker and beat.
        wait_for(
            lambda: set(states(db)) <= {"COMPLETED", "FAILED"},
            120,
            f"samples settled: {states(db)}\n{text}",
        )
        assert sum(states(db).values()) == 60
        r = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/links?limit=5",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 200 and len(r.json()["items"]) == 5
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
        # Every audit row reaches the sandbox as a signed event (it verifies each signature).
        audit = _count(db, "SELECT count(*) FROM link_events")
        events_url = f"http://127.0.0.1:{sandbox_port}/_sandbox/events?limit=100000"
        wait_for(
            lambda: httpx.get(events_url).json()["counts"]["accepted"] >= audit,
            60,
            "events at the sandbox",
        )
        assert httpx.get(events_url).json()["counts"]["bad_signature"] == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # what Ctrl-C or a service manager does
        proc.wait(60)
    # Every process it started is gone (each ran in its own process group).
    leftover = subprocess.run(["pgrep", "-f", f"127.0.0.1:{port}"], capture_output=True)
    assert leftover.stdout == b""
