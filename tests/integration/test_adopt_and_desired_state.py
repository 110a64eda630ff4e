"""Issue 14 end to end, against the sandbox over real sockets on PostgreSQL: links that exist
before dlcsync on both providers are adopted; a desired-state file that keeps some, moves some
and leaves some out is planned and applied with ``--prune``; reconciliation brings the carrier
to exactly what the file declares; applying the file again sends nothing and records nothing.

The ``dlcsync`` commands run in this process (click's runner) with the real settings read
from the environment, as an operator's shell would give them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from dlcsync.cli import main
from models.tables import Link, LinkEvent
from sandbox import SandboxHandle, start_sandbox

pytestmark = pytest.mark.integration

#: The carrier finishes a link or unlink this long after it was asked.
DELAY = 0.2
#: Telnyx campaigns (the adapter tells UUIDs from TCR ids); Plivo's are plain.
T1, T2 = "0f8fad5b-d9cb-469f-a165-70867728950e", "7c9e6679-7425-40de-944b-e07fc1f90ae7"
P1, P2 = "CPLIVO1", "CPLIVO2"

Invoke = Callable[..., Result]


def numbers(first: int, n: int) -> list[str]:
    return [f"+1202555{first + i:04d}" for i in range(n)]


PLIVO = {n: P1 for n in numbers(2000, 6)} | {n: P2 for n in numbers(2010, 6)}
TELNYX = {n: T1 for n in numbers(3000, 6)} | {n: T2 for n in numbers(3010, 6)}


@pytest.fixture
def carrier() -> Iterator[SandboxHandle]:
    handle = start_sandbox(
        delay=DELAY, seed=14, callbacks_enabled=False, plivo_rate_limit=0, telnyx_rate_limit=0
    )
    yield handle
    handle.stop()


@pytest.fixture
def dlcsync(
    pg_url: str, carrier: SandboxHandle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Invoke]:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("REDIS_URL", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in carrier.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DATABASE_URL", pg_url)
    monkeypatch.setenv("TELNYX_RATE_LIMIT_PER_SECOND", "1000")
    monkeypatch.setenv("PLIVO_RATE_LIMIT_PER_SECOND", "1000")
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    yield invoke


def carrier_links(handle: SandboxHandle) -> dict[tuple[str, str], str]:
    """What the carrier has linked: (provider, number) -> campaign."""
    return {
        (r["provider"], r["number"]): r["campaign_id"]
        for r in handle.numbers()
        if r["status"] == "linked"
    }


def changes_sent(handle: SandboxHandle) -> int:
    """Link, move and unlink requests the carrier received (reads are not counted)."""
    counters = httpx.get(f"{handle.url}/_sandbox/counters", timeout=10).json()["requests"]
    return sum(
        n
        for endpoints in counters.values()
        for endpoint in endpoints.values()
        for method, results in endpoint.items()
        if method in ("POST", "PUT", "DELETE")
        for n in results.values()
    )


def count(engine: sa.Engine, table: type) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_adopt_then_apply_a_desired_state_with_prune(
    dlcsync: Invoke,
    carrier: SandboxHandle,
    pg_engine: sa.Engine,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    for provider, links in (("plivo", PLIVO), ("telnyx", TELNYX)):
        body = {
            "provider": provider,
            "links": [{"number": n, "campaign_id": c} for n, c in links.items()],
        }
        r = httpx.post(f"{carrier.url}/_sandbox/preload", json=body, timeout=10)
        assert r.status_code == 200, r.text

    # Adopt: every preloaded link recorded once, as the carrier has it, nothing sent.
    dlcsync("adopt", "--provider", "plivo")
    dlcsync("adopt", "--provider", "telnyx")
    with pg_engine.connect() as conn:
        held = {
            (r.provider, r.number): (r.campaign_id, r.state)
            for r in conn.execute(sa.select(Link.__table__))  # type: ignore[attr-defined]
        }
    expected = {("plivo", n): (c, "COMPLETED") for n, c in PLIVO.items()}
    expected |= {("telnyx", n): (c, "COMPLETED") for n, c in TELNYX.items()}
    assert held == expected
    assert count(pg_engine, LinkEvent) == len(expected)
    assert changes_sent(carrier) == 0

    # The declared state: per provider, keep 6, move 3 to the other campaign, leave 3 out
    # (pruned), and add 2 numbers the carrier does not have.
    declared: dict[tuple[str, str], str] = {}
    for provider, links, other in (
        ("plivo", PLIVO, {P1: P2, P2: P1}),
        ("telnyx", TELNYX, {T1: T2, T2: T1}),
    ):
        items = sorted(links.items())
        declared |= {(provider, n): c for n, c in items[:6]}
        declared |= {(provider, n): other[c] for n, c in items[6:9]}
    declared |= {("plivo", n): P1 for n in numbers(2100, 2)}
    declared |= {("telnyx", n): T2 for n in numbers(3100, 2)}
    desired = tmp_path / "desired.csv"
    desired.write_text(
        "provider,number,campaign_id\n"
        + "".join(f"{p},{n},{c}\n" for (p, n), c in sorted(declared.items()))
    )

    plan = dlcsync("plan", str(desired), "--prune")
    assert "with --prune" in plan.output
    assert count(pg_engine, LinkEvent) == len(expected)  # planning writes nothing

    dlcsync("apply", str(desired), "--prune", "--yes")
    deadline = time.monotonic() + 40
    while carrier_links(carrier) != declared:
        assert time.monotonic() < deadline, (carrier_links(carrier), declared)
        dlcsync("reconcile")
        time.sleep(DELAY)
    dlcsync("reconcile")  # record what the carrier finished last
    with pg_engine.connect() as conn:
        states = {
            (r.provider, r.number): (r.campaign_id, r.state)
            for r in conn.execute(sa.select(Link.__table__))  # type: ignore[attr-defined]
        }
    assert {k: c for k, (c, s) in states.items() if s == "COMPLETED"} == declared
    assert {s for k, (_, s) in states.items() if k not in declared} == {"UNLINKED"}

    # Applying the same file again: nothing sent, nothing recorded.
    sent, events = changes_sent(carrier), count(pg_engine, LinkEvent)
    again = dlcsync("apply", str(desired), "--prune", "--yes")
    assert "Nothing to do" in again.output
    dlcsync("reconcile")
    assert changes_sent(carrier) == sent
    assert count(pg_engine, LinkEvent) == events
    assert carrier_links(carrier) == declared
    assert time.monotonic() - started < 60
