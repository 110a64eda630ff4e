"""The full stack for integration tests: PostgreSQL, Redis, the sandbox, gunicorn, Celery."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from models.db import make_engine
from sandbox import SandboxHandle, start_sandbox
from tests.stack import RedisServer, Stack

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_server(redis_url: str) -> Iterator[RedisServer]:
    """A private Redis server. Depends on ``redis_url`` so that, like every Redis test, it
    fails in CI when Redis is missing."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_redis(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def sandbox() -> Iterator[SandboxHandle]:
    handle = start_sandbox(delay=0.5, seed=7, callback_retry_intervals=[0.5, 1.0, 2.0])
    yield handle
    handle.stop()


@pytest.fixture
def stack_env(pg_url: str, fresh_redis: str, sandbox: SandboxHandle) -> dict[str, str]:
    return sandbox.env() | {
        "DATABASE_URL": pg_url,
        "REDIS_URL": fresh_redis,
        "API_TOKEN": "integration-token-0123456789abcdefghij",
        "POLL_INTERVAL_SECONDS": "1",
        "SWEEP_SECONDS": "2",
    }


@pytest.fixture
def stack(
    tmp_path: Path,
    stack_env: dict[str, str],
    sandbox: SandboxHandle,
    request: pytest.FixtureRequest,
) -> Iterator[Stack]:
    st = Stack.create(tmp_path / f"stack-{uuid.uuid4().hex[:6]}", stack_env)
    sandbox.configure(telnyx_webhook_url=f"{st.web_url}/webhooks/telnyx")
    yield st
    st.stop()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(st.logs())


@pytest.fixture
def db(pg_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep
