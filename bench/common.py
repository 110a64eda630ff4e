"""Shared pieces: figures, databases, process memory, the environment of the stack."""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG_ADMIN_URL = os.environ.get(
    "DLCSYNC_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("DLCSYNC_BENCH_REDIS", "redis://127.0.0.1:6379/14")
RESULTS = ROOT / "bench" / "results"
BASELINE_TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS bench_ingest (id bigserial PRIMARY KEY, body bytea NOT NULL,"
    " received_at timestamptz NOT NULL DEFAULT now())"
)


@dataclass
class Figure:
    """One measured figure beside its same-run baseline and its target."""

    name: str
    value: float | None
    unit: str
    target: str
    ok: bool | None  # None: informative only
    baseline: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def row(self) -> list[str]:
        verdict = "-" if self.ok is None else ("PASS" if self.ok else "MISS")
        value = "n/a" if self.value is None else f"{self.value:.4g} {self.unit}".strip()
        return [self.name, value, self.baseline, self.target, verdict]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- databases -------------------------------------------------------------------------------


def db_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def admin_engine() -> sa.Engine:
    return sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def database_exists(name: str) -> bool:
    with admin_engine().connect() as conn:
        return bool(
            conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).first()
        )


def drop_database(name: str) -> None:
    with admin_engine().connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def create_database(name: str) -> str:
    """A new, migrated database (``alembic upgrade head``); returns its URL."""
    from models.migrate import upgrade

    drop_database(name)
    with admin_engine().connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = db_url(name)
    upgrade(url)
    return url


@contextlib.contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    try:
        yield url
    finally:
        drop_database(name)


# -- memory of process groups ------------------------------------------------------------------


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def group_pids(pgid: int) -> list[int]:
    """Every live process of a process group (the master and its children)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # pgrp is the 5th field: state ppid pgrp
                pids.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return pids


def group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) used so far by the group's live processes.

    On a shared machine a server's requests per second swing with everyone else's load; the
    CPU it spends per request swings much less, so it is the steadier same-run comparison.
    """
    total = 0
    for pid in group_pids(pgid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (after ")")
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def group_rss_mb(pgid: int) -> float:
    return sum(_status_kb(p, "VmRSS") for p in group_pids(pgid)) / 1024


def group_hwm_mb(pgid: int) -> float:
    """Peak RSS summed over the group's live processes (VmHWM)."""
    return sum(_status_kb(p, "VmHWM") for p in group_pids(pgid)) / 1024


class RssSampler:
    """Samples the summed RSS of some process groups every ``step`` seconds in a thread."""

    def __init__(self, groups: dict[str, int], step: float = 1.0) -> None:
        self.groups = groups
        self.step = step
        self.samples: dict[str, list[tuple[float, float]]] = {g: [] for g in groups}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.t0 = time.monotonic()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic() - self.t0
            for name, pgid in self.groups.items():
                self.samples[name].append((now, group_rss_mb(pgid)))
            self._stop.wait(self.step)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def peak(self, name: str) -> float:
        return max((mb for _, mb in self.samples[name]), default=0.0)


def slope_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of MB over time, in MB per minute."""
    if len(samples) < 3:
        return 0.0
    xs = [t for t, _ in samples]
    ys = [m for _, m in samples]
    return statistics.linear_regression(xs, ys).slope * 60


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]
