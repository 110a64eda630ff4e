"""The full stack for integration tests: PostgreSQL, Redis, the sandbox, gunicorn, Celery."""

from __future__ import annotations

import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from dlcsync.sandbox import SandboxHandle, start_sandbox
from models.db import make_engine
from tests.stack import Stack, free_port, wait_for

pytestmark = pytest.mark.integration


#: Private Redis servers by port (a test may stop one and start another on the same port).
REDIS_SERVERS: dict[int, subprocess.Popen[bytes]] = {}


def start_redis(port: int) -> subprocess.Popen[bytes]:
    """A Redis server of this test's own (no persistence, like production's broker)."""
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            tempfile.gettempdir(),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    REDIS_SERVERS[port] = proc
    wait_for(lambda: redis.Redis(port=port).ping(), 10, f"redis-server on {port}")
    return proc


@pytest.fixture
def fresh_redis(redis_url: str) -> Iterator[str]:
    """A private Redis server, so tests that stop Redis disturb nothing else.

    Depends on ``redis_url`` so that, like every Redis test, it fails in CI without Redis.
    """
    port = free_port()
    start_redis(port)
    yield f"redis://127.0.0.1:{port}/0"
    proc = REDIS_SERVERS.pop(port)
    if proc.poll() is None:
        proc.kill()
    proc.wait(5)


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
        "API_TOKEN": "integration-token",
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
