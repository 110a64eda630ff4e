#!/usr/bin/env python3
"""Developer entry point that needs nothing but Python 3.11.

python3 dev.py run     # set up .venv, migrate, start dlcsync (and the sandbox), link samples
python3 dev.py test    # set up .venv, then ruff, mypy and the whole test suite
python3 dev.py bench   # benchmarks (bench/), see README
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
STAMP = VENV / ".dlcsync-installed"


def sh(*args: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    result = subprocess.run([str(a) for a in args], cwd=ROOT, env=env, check=False)
    if result.returncode:
        sys.exit(result.returncode)


def setup() -> None:
    """Create .venv and install dlcsync with its test extras, when pyproject.toml changed."""
    if not (BIN / "python").exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    sh(BIN / "python", "-m", "pip", "install", "-q", "--upgrade", "pip")
    sh(BIN / "python", "-m", "pip", "install", "-q", "-e", ".[test]")
    STAMP.write_text(digest)


def test(extra: list[str]) -> None:
    setup()
    sh(BIN / "ruff", "check", ".")
    sh(BIN / "mypy", "common", "models", "providers", "webhooks", "worker", "dlcsync", "sandbox")
    sh(BIN / "lint-imports")
    sh(BIN / "python", "-m", "pytest", *extra)


def run(extra: list[str]) -> None:
    setup()
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
