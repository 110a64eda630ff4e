"""The reconciler against the sandbox over real sockets, with a controlled clock."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from models.db import transaction
from models.links import load, request_link_of, request_unlink_of
from models.polling import Cadence
from models.statemachine import Source
from models.tables import Alert, Link, LinkEvent
from providers.base import ProviderClient
from providers.plivo import PlivoClient, make_plivo_http
from providers.telnyx import TelnyxClient, make_telnyx_http
from sandbox import SandboxHandle, start_sandbox
from worker.reconcile import Reconciler

T0 = datetime.now(UTC).replace(microsecond=0)
N1, N2 = "+12025550701", "+12025550702"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def sandbox() -> Iterator[SandboxHandle]:
    handle = start_sandbox(delay=0.05, seed=3, callbacks_enabled=False)
    yield handle
    handle.stop()


def clients(
    sandbox: SandboxHandle, *, read_timeout: float = 5.0, key: str | None = None
) -> dict[str, ProviderClient]:
    env = sandbox.env()
    timeout = httpx.Timeout(connect=2.0, read=read_timeout, write=5.0, pool=5.0)
    plivo_http = make_plivo_http(
        env["PLIVO_API_URL"], env["PLIVO_AUTH_ID"], env["PLIVO_AUTH_TOKEN"], timeout=timeout
    )
    telnyx_http = make_telnyx_http(
        env["TELNYX_API_URL"], key or env["TELNYX_API_KEY"], timeout=timeout
    )
    return {
        "plivo": PlivoClient(plivo_http, env["PLIVO_AUTH_ID"], "http://127.0.0.1:9/webhooks/plivo"),
        "telnyx": TelnyxClient(telnyx_http),
    }


@pytest.fixture
def clock() -> Clock:
    return Clock()


def reconciler(engine: sa.Engine, cl: dict[str, ProviderClient], clock: Clock) -> Reconciler:
    return Reconciler(
        engine,
        cl,
        Cadence(interval=60, cap=1800, drift_check=86400),
        rng=random.Random(1),
        clock=clock,
    )


def state(engine: sa.Engine, provider: str, number: str) -> Link:
    with Session(engine) as s:
        link = load(s, provider, number, lock=False)
        assert link is not None
        return link


def post_count(sandbox: SandboxHandle, provider: str) -> int:
    requests = sandbox.counters()["requests"].get(provider, {})
    return sum(
        sum(codes.values())
        for ep in requests.values()
        for m, codes in ep.items()
        if m in ("POST", "PUT")
    )


def request(engine: sa.Engine, clock: Clock, provider: str, number: str, campaign: str) -> None:
    with transaction(engine) as s:
        request_link_of(s, provider, number, campaign, source=Source.API, now=clock())


@pytest.mark.parametrize("provider", ["plivo", "telnyx"])
def test_link_is_sent_then_polled_to_its_final_state(
    engine: sa.Engine, sandbox: SandboxHandle, clock: Clock, provider: str
) -> None:
    rec = reconciler(engine, clients(sandbox), clock)
    request(engine, clock, provider, N1, "CAMP1")
    request(engine, clock, provider, N2, "CAMP1")
    stats = rec.run_once()
    assert stats.claimed == 2 and state(engine, provider, N1).state == "PROCESSING"
    # Plivo takes both numbers in one request; Telnyx one per number.
    assert post_count(sandbox, provider) == (1 if provider == "plivo" else 2)
    assert rec.run_once().claimed == 0  # nothing due before the poll interval
    sandbox.settle()
    clock.advance(61)
    rec.run_once()
    assert state(engine, provider, N1).state == "COMPLETED"
    with Session(engine) as s:
        rows = s.exec(select(LinkEvent.to_state).where(LinkEvent.number == N1)).all()
    assert rows == ["LINK_REQUESTED", "PROCESSING", "COMPLETED"]
    # Terminal links come back for a drift check a day (+-10 %) later.
    due = state(engine, provider, N1).next_poll_at
    assert due is not None and timedelta(hours=21) < due - clock() < timedelta(hours=27)


def test_timed_out_link_is_checked_with_a_get_before_resending(
    engine: sa.Engine, sandbox: SandboxHandle, clock: Clock
) -> None:
    # The sandbox applies a hung request, then answers too late for our read timeout.
    sandbox.configure(hang_ratio=1.0, hang_seconds=1.0, hang_mode="answer")
    rec = reconciler(engine, clients(sandbox, read_timeout=0.3), clock)
    request(engine, clock, "telnyx", N1, "CAMP1")
    rec.run_once()
    link = state(engine, "telnyx", N1)
    assert (link.state, link.needs_check, link.request_attempts) == ("LINK_REQUESTED", True, 1)
    sandbox.configure(hang_ratio=0.0)
    clock.advance(3600)
    rec.run_once()
    # The GET found the request had arrived (and, the sandbox being quick, completed).
    assert state(engine, "telnyx", N1).state in ("PROCESSING", "COMPLETED")
    assert post_count(sandbox, "telnyx") == 1, "the link was not sent twice"


@pytest.mark.parametrize("provider", ["plivo", "telnyx"])
def test_move_to_another_campaign(
    engine: sa.Engine, sandbox: SandboxHandle, clock: Clock, provider: str
) -> None:
    rec = reconciler(engine, clients(sandbox), clock)
    request(engine, clock, provider, N1, "CAMPA")
    rec.run_once()
    sandbox.settle()
    clock.advance(61)
    rec.run_once()
    assert state(engine, provider, N1).state == "COMPLETED"
    clock.advance(1)
    request(engine, clock, provider, N1, "CAMPB")
    assert state(engine, provider, N1).prior_campaign_id == "CAMPA"
    # Telnyx moves in one PUT; Plivo unlinks, waits for the carrier, then links.
    for _ in range(4):
        rec.run_once()
        sandbox.settle()
        clock.advance(200)
    link = state(engine, provider, N1)
    assert (link.state, link.campaign_id, link.generation, link.prior_campaign_id) == (
        "COMPLETED",
        "CAMPB",
        2,
        None,
    )
    (truth,) = sandbox.numbers(provider)
    assert truth["campaign_id"] == "CAMPB" and truth["status"] == "linked"


def test_permanent_error_fails_the_link_with_the_providers_reason(
    engine: sa.Engine, sandbox: SandboxHandle, clock: Clock
) -> None:
    cl = clients(sandbox)
    cl["telnyx"].link("OTHER", [N1])  # someone else put the number on another campaign
    rec = reconciler(engine, cl, clock)
    request(engine, clock, "telnyx", N1, "CAMP1")
    rec.run_once()
    link = state(engine, "telnyx", N1)
    assert link.state == "FAILED" and link.failure_reason and "10015" in link.failure_reason
    with Session(engine) as s:
        assert [a.kind for a in s.exec(select(Alert)).all()] == ["link_failed"]


def test_429_is_retried_after_the_providers_delay(
    engine: sa.Engine, sandbox: SandboxHandle, clock: Clock
) -> None:
    sandbox.configure(rate_429_ratio=1.0, retry_after=600)
    rec = reconciler(engine, clients(sandbox), clock)
    request(engine, clock, "plivo", N1, "CAMP1")
    rec.run_once()
    link = state(engine, "plivo", N1)
    assert link.state == "LINK_REQUESTED" and link.request_attempts == 1
    assert link.last_error and "429" in link.last_error
    assert link.next_poll_at is not None and link.next_poll_at - clock() >= timedelta(seconds=600)
    sandbox.configure(rate_429_ratio=0.0)
    clock.advance(601)
    rec.run_once()
    assert state(engine, "plivo", N1).state == "PROCESSING"


def test_rejected_credentials_alert_and_keep_the_request(
    engine: sa.Engine, sandbox: SandboxHandle, clock: Clock
) -> None:
    rec = reconciler(engine, clients(sandbox, key="KEYWRONG"), clock)
    request(engine, clock, "telnyx", N1, "CAMP1")
    request(engine, clock, "telnyx", N2, "CAMP1")
    rec.run_once()
    assert state(engine, "telnyx", N1).state == "LINK_REQUESTED"
    with Session(engine) as s:
        assert [a.kind for a in s.exec(select(Alert)).all()] == ["credentials"]


def test_unlink_then_number_disappears(
    engine: sa.Engine, sandbox: SandboxHandle, clock: Clock
) -> None:
    rec = reconciler(engine, clients(sandbox), clock)
    for provider in ("plivo", "telnyx"):
        request(engine, clock, provider, N1, "CAMP1")
    rec.run_once()
    sandbox.settle()
    clock.advance(61)
    rec.run_once()
    with transaction(engine) as s:
        for provider in ("plivo", "telnyx"):
            request_unlink_of(s, provider, N1, source=Source.CLI, now=clock())
    rec.run_once()
    assert {state(engine, p, N1).state for p in ("plivo", "telnyx")} == {"UNLINK_PROCESSING"}
    sandbox.settle()
    clock.advance(61)
    rec.run_once()
    assert {state(engine, p, N1).state for p in ("plivo", "telnyx")} == {"UNLINKED"}
    assert sandbox.numbers() == []


@pytest.fixture
def slow_sandbox() -> Iterator[SandboxHandle]:
    """Links stay PROCESSING for a minute, whatever the machine's load."""
    handle = start_sandbox(delay=60, seed=3, callbacks_enabled=False)
    yield handle
    handle.stop()


def test_a_resent_request_the_provider_already_has_is_not_a_failure(
    engine: sa.Engine, slow_sandbox: SandboxHandle, clock: Clock
) -> None:
    """We crashed after Plivo accepted N1 and before recording it: resending is refused
    ("already requested"), and that refusal of the whole batch must not fail N2 either."""
    cl = clients(slow_sandbox)
    cl["plivo"].link("CAMP1", [N1])
    rec = reconciler(engine, cl, clock)
    request(engine, clock, "plivo", N1, "CAMP1")
    request(engine, clock, "plivo", N2, "CAMP1")
    rec.run_once()
    assert {state(engine, "plivo", n).state for n in (N1, N2)} == {"PROCESSING"}
    with Session(engine) as s:
        assert s.exec(select(Alert)).all() == []
