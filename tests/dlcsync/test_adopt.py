"""``dlcsync adopt`` against the sandbox over real sockets, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from models.tables import Alert, Link, LinkEvent
from sandbox import SandboxConfig, SandboxHandle, start_sandbox
from tests.dlcsync.conftest import Invoke

OWN = "6f1e6a52-3a43-4c8e-9f0e-0a7c3c2b9d11"


@pytest.fixture
def carrier(cli_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxHandle]:
    handle = start_sandbox(SandboxConfig(port=0, delay=60, plivo_rate_limit=0, telnyx_rate_limit=0))
    for name, value in handle.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TELNYX_RATE_LIMIT_PER_SECOND", "1000")
    yield handle
    handle.stop()


def control(handle: SandboxHandle, path: str, body: dict) -> dict:
    r = httpx.post(f"{handle.url}/_sandbox/{path}", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def sent_link_or_unlink(handle: SandboxHandle, provider: str) -> int:
    counters = httpx.get(f"{handle.url}/_sandbox/counters", timeout=10).json()
    endpoints = counters["requests"].get(provider, {})
    return sum(
        n
        for endpoint in endpoints.values()
        for method, results in endpoint.items()
        if method in ("POST", "PUT", "DELETE")
        for n in results.values()
    )


def rows(db: sa.Engine, table: type) -> list:
    with db.connect() as conn:
        return list(conn.execute(sa.select(table.__table__)))


def numbers(n: int, start: int = 0) -> list[str]:
    return [f"+1202555{1000 + start + i:04d}" for i in range(n)]


def test_adopt_records_each_link_once_and_is_idempotent(
    carrier: SandboxHandle, dlcsync: Invoke, db: sa.Engine
) -> None:
    links = [{"number": n, "campaign_id": f"CAMP{i % 3}"} for i, n in enumerate(numbers(30))]
    links[0]["status"] = "pending"
    control(carrier, "preload", {"provider": "plivo", "links": links})

    result = dlcsync("adopt", "--provider", "plivo")
    assert result.exit_code == 0, result.output
    assert "adopted" in result.output and "30" in result.output
    stored = {r.number: r for r in rows(db, Link)}
    assert len(stored) == 30
    assert stored[numbers(1)[0]].state == "PROCESSING"
    assert {r.state for n, r in stored.items() if n != numbers(1)[0]} == {"COMPLETED"}
    assert stored[numbers(2)[1]].campaign_id == "CAMP1"
    events = rows(db, LinkEvent)
    assert len(events) == 30
    assert {(e.source, e.from_state) for e in events} == {("adopted", None)}

    again = dlcsync("adopt", "--provider", "plivo")
    assert again.exit_code == 0, again.output
    assert len(rows(db, LinkEvent)) == 30
    assert "already known" in again.output
    assert sent_link_or_unlink(carrier, "plivo") == 0


def test_adopt_telnyx_by_campaign_reports_drift_and_not_listed(
    carrier: SandboxHandle, dlcsync: Invoke, db: sa.Engine
) -> None:
    first = dlcsync  # same runner
    nums = numbers(4)
    control(
        carrier,
        "preload",
        {"provider": "telnyx", "links": [{"number": n, "campaign_id": OWN} for n in nums[:3]]},
    )
    assert first("adopt", "--provider", "telnyx", "--campaign", OWN).exit_code == 0
    # Behind dlcsync's back: one number moves to another campaign, one goes away.
    control(
        carrier,
        "drift",
        {"provider": "telnyx", "number": nums[0], "action": "move", "campaign_id": "C4X7Q2A"},
    )
    control(carrier, "drift", {"provider": "telnyx", "number": nums[1], "action": "unlink"})
    result = dlcsync("adopt", "--provider", "telnyx")
    assert result.exit_code == 0, result.output
    assert nums[1] in result.output  # linked here, not listed there
    moved = [e for e in rows(db, LinkEvent) if e.number == nums[0]]
    assert [(e.source, e.drift, e.campaign_id) for e in moved][-1] == ("adopted", True, "C4X7Q2A")
    assert [a.kind for a in rows(db, Alert)] == ["drift"]
    left = {r.number: r.state for r in rows(db, Link)}
    assert left[nums[1]] == "COMPLETED"  # reported, left to the drift check
    assert sent_link_or_unlink(carrier, "telnyx") == 0


def test_adopt_dry_run_writes_nothing(
    carrier: SandboxHandle, dlcsync: Invoke, db: sa.Engine
) -> None:
    control(
        carrier,
        "preload",
        {"provider": "plivo", "links": [{"number": n, "campaign_id": "CAMP0"} for n in numbers(3)]},
    )
    result = dlcsync("adopt", "--provider", "plivo", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would adopt" in result.output
    assert rows(db, Link) == [] and rows(db, LinkEvent) == []
