"""Every command answers one line, not a traceback, when the database or the broker is
unreachable or the schema was never migrated (DESIGN §5)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dlcsync.cli import main

DEAD_POSTGRES = "postgresql+psycopg://dlc:db-secret-pw@127.0.0.1:1/dlcsync"
DEAD_REDIS = "redis://127.0.0.1:1/0"
NUMBER = "+14155550100"

#: Every command that reads or writes the database (``run`` and ``sandbox`` start servers).
DATABASE_COMMANDS = [
    ("link", "--provider", "plivo", "--campaign", "C1", NUMBER),
    ("unlink", "--provider", "plivo", NUMBER),
    ("status",),
    ("status", "--json"),
    ("history", NUMBER),
    ("export", "links"),
    ("export", "events"),
    ("alerts",),
    ("reconcile", "--provider", "plivo"),
    ("db", "check"),
]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("TELNYX_API_KEY", "REDIS_URL", "API_TOKEN", "SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PLIVO_AUTH_ID", "MATESTTESTTESTTEST00")
    monkeypatch.setenv("PLIVO_AUTH_TOKEN", "test-token")
    monkeypatch.setenv("PLIVO_API_URL", "http://127.0.0.1:1")
    return monkeypatch


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def assert_one_line_error(result: Result, *expected: str) -> str:
    assert result.exit_code == 1, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for text in expected:
        assert text in lines[-1], lines[-1]
    return lines[-1]


@pytest.mark.parametrize("args", [*DATABASE_COMMANDS, ("db", "upgrade")], ids=" ".join)
def test_unreachable_postgresql(env: pytest.MonkeyPatch, args: tuple[str, ...]) -> None:
    env.setenv("DATABASE_URL", DEAD_POSTGRES)
    line = assert_one_line_error(run(*args), "127.0.0.1:1")
    assert "db-secret-pw" not in line  # the URL is shown without its password


@pytest.mark.parametrize("args", DATABASE_COMMANDS, ids=" ".join)
def test_unmigrated_sqlite(env: pytest.MonkeyPatch, tmp_path: Path, args: tuple[str, ...]) -> None:
    env.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    assert_one_line_error(run(*args), "dlcsync db upgrade")


def test_unreachable_broker(env: pytest.MonkeyPatch, sqlite_url: str) -> None:
    """``reconcile`` shares the worker's rate limits through Redis when REDIS_URL is set."""
    env.setenv("DATABASE_URL", sqlite_url)
    env.setenv("REDIS_URL", DEAD_REDIS)
    link = run("link", "--provider", "plivo", "--campaign", "C1", NUMBER)
    assert link.exit_code == 0, link.output
    assert_one_line_error(run("reconcile", "--provider", "plivo"), "broker")
