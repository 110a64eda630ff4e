"""Pre-flight checks in the request path, against the sandbox over real sockets: each
refusal fails the link at once with no link request; a failed lookup lets it go; the
override and --skip-preflight; Telnyx's dormant-campaign cure retried once."""

from __future__ import annotations

import random
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from models.campaigns import set_limit
from models.db import transaction
from models.links import request_link_of
from models.polling import Cadence
from models.statemachine import Source
from models.tables import Link, LinkEvent
from providers.base import ProviderClient
from providers.plivo import PlivoClient, make_plivo_http
from providers.telnyx import TelnyxClient, make_telnyx_http
from sandbox import SandboxHandle, start_sandbox
from worker.preflight import Preflight
from worker.reconcile import Reconciler

OWN = "6f1e6a52-3a43-4c8e-9f0e-0a7c3c2b9d11"


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sandbox() -> Iterator[SandboxHandle]:
    handle = start_sandbox(delay=0.05, seed=3, callbacks_enabled=False, telnyx_rate_limit=0)
    yield handle
    handle.stop()


@pytest.fixture
def clients(sandbox: SandboxHandle) -> Iterator[dict[str, ProviderClient]]:
    env = sandbox.env()
    plivo_http = make_plivo_http(
        env["PLIVO_API_URL"], env["PLIVO_AUTH_ID"], env["PLIVO_AUTH_TOKEN"]
    )
    telnyx_http = make_telnyx_http(env["TELNYX_API_URL"], env["TELNYX_API_KEY"])
    yield {
        "plivo": PlivoClient(plivo_http, env["PLIVO_AUTH_ID"], "http://127.0.0.1:9/webhooks/plivo"),
        "telnyx": TelnyxClient(telnyx_http),
    }
    plivo_http.close()
    telnyx_http.close()


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


@pytest.fixture
def rec(engine: sa.Engine, clients: dict[str, ProviderClient], ticks: Ticks) -> Reconciler:
    return Reconciler(
        engine,
        clients,
        Cadence(interval=60, cap=1800, drift_check=86400),
        rng=random.Random(1),
        preflight=Preflight(engine, ttl=300, clock=ticks),
    )


def campaign(sandbox: SandboxHandle, provider: str, cid: str, **fields: object) -> None:
    r = httpx.post(
        f"{sandbox.url}/_sandbox/campaigns",
        json={"provider": provider, "campaign_id": cid, **fields},
        timeout=10,
    )
    assert r.status_code == 200, r.text


def link_requests(sandbox: SandboxHandle, provider: str) -> int:
    requests = sandbox.counters()["requests"].get(provider, {})
    return sum(
        n
        for name, ep in requests.items()
        if name.startswith("phone_number_campaign") or name == "campaign_numbers"
        for m, codes in ep.items()
        if m in ("POST", "PUT")
        for n in codes.values()
    )


def ask(
    engine: sa.Engine, provider: str, campaign_id: str, *numbers: str, skip: bool = False
) -> None:
    with transaction(engine) as s:
        for n in numbers:
            request_link_of(s, provider, n, campaign_id, source=Source.CLI, skip_preflight=skip)


def links(engine: sa.Engine) -> dict[str, Link]:
    with Session(engine) as s:
        return {link.number: link for link in s.exec(select(Link))}


def numbers(n: int, start: int = 0) -> list[str]:
    return [f"+1202555{2000 + start + i:04d}" for i in range(n)]


@pytest.mark.parametrize(
    ("provider", "cid", "fields", "why"),
    [
        ("plivo", "CGONE", {"exists": False}, "does not exist"),
        ("plivo", "CEXP", {"status": "EXPIRED"}, "cannot take numbers"),
        ("telnyx", OWN, {"telnyx_status": "EXPIRED"}, "EXPIRED"),
        ("telnyx", OWN, {"tmobile_suspended": True}, "T-Mobile"),
        ("telnyx", "C4X7Q2A", {"status": "TCR_SUSPENDED"}, "TCR_SUSPENDED"),
    ],
)
def test_a_campaign_that_cannot_take_numbers_fails_the_link_without_a_request(
    engine: sa.Engine,
    sandbox: SandboxHandle,
    rec: Reconciler,
    provider: str,
    cid: str,
    fields: dict[str, object],
    why: str,
) -> None:
    campaign(sandbox, provider, cid, **fields)
    ask(engine, provider, cid, *numbers(2))
    rec.run_once()
    got = links(engine)
    assert {link.state for link in got.values()} == {"FAILED"}
    assert all(why in (link.failure_reason or "") for link in got.values())
    assert link_requests(sandbox, provider) == 0


@pytest.mark.parametrize(
    ("fields", "cap"),
    [({"pooling": False}, 49), ({"usecase": "SOLE_PROPRIETOR"}, 1)],
)
def test_the_number_cap_refuses_what_would_exceed_it(
    engine: sa.Engine, sandbox: SandboxHandle, rec: Reconciler, fields: dict, cap: int
) -> None:
    campaign(sandbox, "telnyx", OWN, **fields)
    ask(engine, "telnyx", OWN, *numbers(cap + 2))
    rec.run_once()
    states = [link.state for link in links(engine).values()]
    assert states.count("FAILED") == 2
    assert states.count("PROCESSING") == cap
    assert link_requests(sandbox, "telnyx") == cap


def test_operator_override_and_skip_preflight(
    engine: sa.Engine, sandbox: SandboxHandle, rec: Reconciler
) -> None:
    with transaction(engine) as s:
        set_limit(s, "plivo", "CSMALL", 2)
    first, second, third, fourth = numbers(4)
    ask(engine, "plivo", "CSMALL", first, second, third)
    ask(engine, "plivo", "CSMALL", fourth, skip=True)
    rec.run_once()
    got = links(engine)
    # The skipped one still takes a place on the campaign.
    assert [got[n].state for n in (first, second, third)] == ["PROCESSING", "FAILED", "FAILED"]
    assert "limit of 2 number(s) (operator's limit)" in (got[third].failure_reason or "")
    assert got[fourth].state == "PROCESSING"  # the operator knew better


def test_a_failed_lookup_lets_the_link_go_and_lookups_are_cached(
    engine: sa.Engine, sandbox: SandboxHandle, rec: Reconciler, ticks: Ticks
) -> None:
    sandbox.configure(error_5xx_ratio=1.0)
    ask(engine, "plivo", "CANY", numbers(1)[0])
    rec.run_once()  # the lookup and the link both fail: retried later, not failed
    assert links(engine)[numbers(1)[0]].state == "LINK_REQUESTED"
    sandbox.configure(error_5xx_ratio=0.0)
    with transaction(engine) as s:
        s.execute(sa.update(Link).values(next_poll_at=sa.func.now()))
    rec.run_once()
    assert links(engine)[numbers(1)[0]].state == "PROCESSING"
    lookups = sandbox.counters()["requests"]["plivo"]["campaign"]["GET"]
    ask(engine, "plivo", "CANY", numbers(1, start=1)[0])
    rec.run_once()
    assert sandbox.counters()["requests"]["plivo"]["campaign"]["GET"] == lookups  # cached
    ticks.now += 301
    ask(engine, "plivo", "CANY", numbers(1, start=2)[0])
    rec.run_once()
    assert sum(sandbox.counters()["requests"]["plivo"]["campaign"]["GET"].values()) == 1 + sum(
        lookups.values()
    )


def test_dormant_campaign_is_retried_once_and_history_shows_both_attempts(
    engine: sa.Engine, sandbox: SandboxHandle, rec: Reconciler
) -> None:
    campaign(sandbox, "telnyx", OWN, dormant=True)
    number = numbers(1)[0]
    ask(engine, "telnyx", OWN, number)
    rec.run_once()
    sandbox.settle()
    for _ in range(3):
        with transaction(engine) as s:
            s.execute(sa.update(Link).values(next_poll_at=sa.func.now()))
        rec.run_once()
        sandbox.settle()
    with Session(engine) as s:
        history = s.exec(
            select(LinkEvent.generation, LinkEvent.to_state, LinkEvent.source).order_by(col_id())
        ).all()
    assert [(g, to) for g, to, _ in history] == [
        (1, "LINK_REQUESTED"),
        (1, "PROCESSING"),
        (1, "FAILED"),
        (2, "LINK_REQUESTED"),
        (2, "PROCESSING"),
        (2, "COMPLETED"),
    ]
    assert history[3][2] == "system"
    assert link_requests(sandbox, "telnyx") == 2


def col_id():  # type: ignore[no-untyped-def]
    from sqlmodel import col

    return col(LinkEvent.id)
