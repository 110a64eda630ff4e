"""Fixtures for the command-line tests: a migrated database (SQLite and PostgreSQL) in the
environment, Plivo configured, Telnyx not, and a runner for ``dlcsync``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from dlcsync.cli import main
from models.db import make_engine

Invoke = Callable[..., Result]


@pytest.fixture
def cli_env(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("TELNYX_API_KEY", "REDIS_URL", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("PLIVO_AUTH_ID", "MATESTTESTTESTTEST00")
    monkeypatch.setenv("PLIVO_AUTH_TOKEN", "test-token")
    return db_url


@pytest.fixture
def db(cli_env: str) -> Iterator[sa.Engine]:
    engine = make_engine(cli_env)
    yield engine
    engine.dispose()


@pytest.fixture
def dlcsync(cli_env: str) -> Invoke:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke
