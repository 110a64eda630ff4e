"""Bulk operator paths: ``dlcsync link --file`` with 10,000 lines and ``dlcsync plan`` of a
100,000-line desired-state file, on PostgreSQL and SQLite.

The command runs as an operator runs it (a new process, the installed ``dlcsync`` entry
point); the same-run baseline is the same process doing nothing (``dlcsync --help``), so the
figure shows what the 10,000 lines cost beyond starting Python. Each database is new and
migrated; the file's numbers are all new, then linked again (nothing changes: the idempotent
path reads every link). The plan's file declares those 10,000 numbers (unchanged) and 90,000
more (to link); planning writes nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import Figure, log

LINES = 10_000
TARGET_S = 2.0
PLAN_LINES = 100_000
#: DESIGN §7: "planning a 100,000-line file in seconds" (read: a single-digit number of them).
PLAN_TARGET_S = 10.0


def _dlcsync(args: list[str], env: dict[str, str], cwd: Path) -> float:
    exe = Path(sys.executable).parent / "dlcsync"
    started = time.monotonic()
    done = subprocess.run(
        [str(exe), *args], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"dlcsync {' '.join(args[:2])} failed: {done.stderr[-500:]}")
    return elapsed


def run(database_url: str, workdir: Path, quick: bool) -> tuple[list[Figure], dict[str, Any]]:
    from models.migrate import upgrade

    csv = workdir / "bulk-link.csv"
    csv.write_text(
        "number\n" + "".join(f"+172055{i // 10_000}{i % 10_000:04d}\n" for i in range(LINES))
    )
    desired = workdir / "bulk-plan.csv"
    desired.write_text(
        "provider,number,campaign_id\n"
        + "".join(
            f"plivo,+17205{i // 10_000 + 50}{i % 10_000:04d},CBULK\n" for i in range(PLAN_LINES)
        )
    )
    sqlite = workdir / "bulk.db"
    sqlite_url = f"sqlite:///{sqlite}"
    upgrade(sqlite_url)
    base = {k: v for k, v in os.environ.items() if not k.startswith("DLCSYNC_")}
    base |= {"PLIVO_AUTH_ID": "MABENCHBULK", "PLIVO_AUTH_TOKEN": "bench-token"}
    figures: list[Figure] = []
    detail: dict[str, Any] = {"lines": LINES, "plan_lines": PLAN_LINES}
    for name, url in (("PostgreSQL", database_url), ("SQLite", sqlite_url)):
        env = base | {"DATABASE_URL": url}
        startup = _dlcsync(["--help"], env, workdir)
        link = ["link", "--provider", "plivo", "--campaign", "CBULK", "--file", str(csv)]
        first = _dlcsync(link, env, workdir)
        again = _dlcsync(link, env, workdir)
        plan = _dlcsync(["plan", str(desired)], env, workdir)
        log(
            f"  bulk link {name}: {first:.2f}s new, {again:.2f}s again; start-up {startup:.2f}s;"
            f" plan of {PLAN_LINES:,} lines {plan:.2f}s"
        )
        detail[name] = {"new_s": first, "again_s": again, "startup_s": startup, "plan_s": plan}
        figures.append(
            Figure(
                f"CSV link of {LINES:,} lines, {name}",
                first,
                "s",
                f"< {TARGET_S:g} s",
                first < TARGET_S,
                f"process start-up {startup:.2f} s; same file again {again:.2f} s",
                detail[name],
            )
        )
        figures.append(
            Figure(
                f"plan of a {PLAN_LINES:,}-line file, {name}",
                plan,
                "s",
                f"< {PLAN_TARGET_S:g} s",
                plan < PLAN_TARGET_S,
                f"process start-up {startup:.2f} s; {LINES:,} unchanged, the rest to link",
                detail[name],
            )
        )
    return figures, {"bulk_link": detail}
