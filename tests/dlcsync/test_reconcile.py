"""``dlcsync reconcile`` against the sandbox carrier: send requests, poll, return when done."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from models.tables import Link
from sandbox import SandboxHandle, start_sandbox
from tests.dlcsync.conftest import Invoke

PLIVO = [f"+1415555{i:04d}" for i in range(5)]
TELNYX = [f"+1628555{i:04d}" for i in range(3)]
TELNYX_CAMPAIGN = "4b300178-131c-d902-d54e-72d90ba1620j"


@pytest.fixture
def sandbox(cli_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxHandle]:
    handle = start_sandbox(
        delay=60.0, callbacks_enabled=False, plivo_rate_limit=0, telnyx_rate_limit=0
    )
    for name, value in handle.env().items():
        monkeypatch.setenv(name, value)
    yield handle
    handle.stop()


def states(db: sa.Engine) -> dict[str, str]:
    with Session(db) as s:
        return {link.number: link.state for link in s.exec(select(Link)).all()}


def test_reconcile_sends_requests_then_polls(
    dlcsync: Invoke, db: sa.Engine, sandbox: SandboxHandle
) -> None:
    assert dlcsync("link", "--provider", "plivo", "--campaign", "CMPA", *PLIVO).exit_code == 0
    linked = dlcsync("link", "--provider", "telnyx", "--campaign", TELNYX_CAMPAIGN, *TELNYX)
    assert linked.exit_code == 0

    first = dlcsync("reconcile")
    assert first.exit_code == 0, first.output
    assert "links claimed │ 8" in " ".join(first.output.split())
    assert set(states(db).values()) == {"PROCESSING"}
    assert {n["number"] for n in sandbox.numbers()} == set(PLIVO) | set(TELNYX)

    sandbox.settle()  # the carrier finishes provisioning
    second = dlcsync("reconcile", "--provider", "plivo", "--campaign", "CMPA")
    assert second.exit_code == 0, second.output
    out = " ".join(second.output.split())
    assert "links claimed │ 5" in out and "changes applied │ 5" in out
    now = states(db)
    assert {now[n] for n in PLIVO} == {"COMPLETED"}
    assert {now[n] for n in TELNYX} == {"PROCESSING"}  # not asked to

    history = dlcsync("history", PLIVO[0])
    assert "poll" in history.output and "COMPLETED" in history.output


def test_reconcile_needs_a_configured_provider(
    dlcsync: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLIVO_AUTH_ID")
    result = dlcsync("reconcile")
    assert result.exit_code == 2
    assert "PLIVO_AUTH_ID" in result.output and "TELNYX_API_KEY" in result.output
    result = dlcsync("reconcile", "--provider", "telnyx")
    assert result.exit_code == 2 and "TELNYX_API_KEY" in result.output
