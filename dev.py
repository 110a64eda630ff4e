#!/usr/bin/env python3
"""Developer entry point that needs nothing but Python 3.11.

python3 dev.py run     # set up .venv (no test tools), migrate, start dlcsync (and the sandbox)
python3 dev.py test    # set up .venv with the test tools, then ruff, mypy and the whole suite
python3 dev.py bench   # benchmarks (bench/, needs the test tools), see README
python3 dev.py setup   # only set up .venv with the test tools
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
#: One stamp per install: what running needs, and that plus the ``[test]`` extra (~600 MB of
#: test tools). Each holds the hash of the pyproject.toml it was installed from.
STAMPS = {"run": VENV / ".dlcsync-installed-run", "test": VENV / ".dlcsync-installed"}


def sh(*args: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    result = subprocess.run([str(a) for a in args], cwd=ROOT, env=env, check=False)
    if result.returncode:
        sys.exit(result.returncode)


def setup(extra: str = "test") -> None:
    """Create .venv and install dlcsync (``extra="run"``: only what running needs; ``"test"``:
    with the test tools too), unless that install is current for this pyproject.toml."""
    if not (BIN / "python").exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    # The test install includes everything running needs, so it satisfies "run" too.
    enough = ("run", "test") if extra == "run" else ("test",)
    if any(_stamped(STAMPS[e], digest) for e in enough):
        return
    sh(BIN / "python", "-m", "pip", "install", "-q", "--upgrade", "pip")
    sh(BIN / "python", "-m", "pip", "install", "-q", "-e", "." if extra == "run" else ".[test]")
    STAMPS[extra].write_text(digest)


def _stamped(stamp: Path, digest: str) -> bool:
    return stamp.exists() and stamp.read_text() == digest


def test(extra: list[str]) -> None:
    setup()
    sh(BIN / "ruff", "check", ".")
    sh(BIN / "mypy", "common", "models", "providers", "webhooks", "worker", "dlcsync", "sandbox")
    sh(BIN / "lint-imports")
    sh(BIN / "python", "-m", "pytest", *extra)


def run(extra: list[str]) -> None:
    setup("run")
    os.execv(str(BIN / "dlcsync"), [str(BIN / "dlcsync"), "run", *extra])  # noqa: S606


def bench(extra: list[str]) -> None:
    setup()
    sh(BIN / "python", "-m", "bench", *extra)


def main() -> None:
    commands = {"test": test, "run": run, "bench": bench}
    if len(sys.argv) < 2 or sys.argv[1] not in commands | {"setup": None}:
        print(__doc__)
        sys.exit(2)
    if sys.argv[1] == "setup":
        setup()
        return
    commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
