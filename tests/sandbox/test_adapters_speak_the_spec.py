"""The adapters against the sandbox over real sockets, with the sandbox as strict as the
providers' published contracts (issue 12 §1): every Telnyx request passes the spec, shared
(TCR-id) campaigns converge from polling alone, and capped pages do not end a listing."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from models.db import transaction
from models.links import request_link_of
from models.polling import Cadence
from models.statemachine import Signal, Source
from models.tables import Link
from providers.base import NotLinked
from providers.plivo import PlivoClient, make_plivo_http
from providers.telnyx import TelnyxClient, make_telnyx_http
from sandbox import SandboxHandle, start_sandbox
from tests.sandbox.conftest import TELNYX_CAMPAIGN, make_config
from worker.reconcile import Reconciler, until_quiet

SHARED = ("C4X7Q2A", "CSHARE2")


@pytest.fixture
def live() -> Iterator[SandboxHandle]:
    handle = start_sandbox(make_config(delay=0.05, callbacks_enabled=False))
    yield handle
    handle.stop()


def telnyx(live: SandboxHandle, **kw: int) -> TelnyxClient:
    env = live.env()
    return TelnyxClient(make_telnyx_http(env["TELNYX_API_URL"], env["TELNYX_API_KEY"]), **kw)


def plivo(live: SandboxHandle, **kw: int) -> PlivoClient:
    env = live.env()
    http = make_plivo_http(env["PLIVO_API_URL"], env["PLIVO_AUTH_ID"], env["PLIVO_AUTH_TOKEN"])
    return PlivoClient(http, env["PLIVO_AUTH_ID"], "http://127.0.0.1:9/webhooks/plivo", **kw)


def telnyx_answers(live: SandboxHandle) -> set[str]:
    requests = live.counters()["requests"].get("telnyx", {})
    return {code for methods in requests.values() for codes in methods.values() for code in codes}


@pytest.mark.parametrize(
    ("campaign", "other"), [(TELNYX_CAMPAIGN, "C9OTHER"), (SHARED[0], SHARED[1])]
)
def test_every_telnyx_request_passes_the_spec(
    live: SandboxHandle, campaign: str, other: str
) -> None:
    client = telnyx(live, page_size=2)
    numbers = [f"+1202555{i:04d}" for i in range(4100, 4105)]
    assert [s.signal for s in client.link(campaign, numbers)] == [Signal.PENDING] * 5  # POST
    live.settle()
    assert client.get(campaign, numbers[0]).signal is Signal.LINKED  # GET one
    listed = client.list_campaign(campaign)  # GET list, 3 pages of 2
    assert sorted(s.number for s in listed) == numbers
    assert {s.campaign_id for s in listed} == {campaign}
    moved = client.move(numbers[1], campaign, other)  # PUT
    assert moved.campaign_id == other
    client.unlink(campaign, numbers[2])  # DELETE
    live.settle()
    with pytest.raises(NotLinked):
        client.get(campaign, numbers[2])
    assert sorted(s.number for s in client.list_campaign(campaign)) == [
        numbers[0],
        numbers[3],
        numbers[4],
    ]
    assert [s.number for s in client.list_campaign(other)] == [numbers[1]]
    assert telnyx_answers(live) == {"200", "404"}  # nothing refused by the spec


def test_listings_go_on_past_capped_pages(live: SandboxHandle) -> None:
    """The provider serves 7 per page whatever we ask: every number is still listed."""
    live.configure(telnyx_page_cap=7, plivo_page_cap=7)
    numbers = [f"+1202555{i:04d}" for i in range(4200, 4230)]
    telnyx_client, plivo_client = telnyx(live, page_size=50), plivo(live)
    telnyx_client.link(SHARED[0], numbers)
    plivo_client.link("CPLIVO7", numbers)
    assert sorted(s.number for s in telnyx_client.list_campaign(SHARED[0])) == numbers
    assert sorted(s.number for s in plivo_client.list_campaign("CPLIVO7")) == numbers
    pages = live.counters()["requests"]
    assert pages["telnyx"]["phone_number_campaigns"]["GET"] == {"200": 5}
    assert pages["plivo"]["campaign_numbers"]["GET"] == {"200": 5}


def test_shared_campaigns_converge_from_polling_alone(
    live: SandboxHandle, engine: sa.Engine
) -> None:
    """60 numbers on two TCR-id campaigns, no callbacks: the reconciler's listings converge."""
    plan = {c: [f"+1202556{k}{i:03d}" for i in range(30)] for k, c in enumerate(SHARED)}
    with transaction(engine) as s:
        for campaign, numbers in plan.items():
            for number in numbers:
                request_link_of(s, "telnyx", number, campaign, source=Source.API)
    reconciler = Reconciler(
        engine, {"telnyx": telnyx(live)}, Cadence(interval=60), rng=random.Random(1)
    )
    until_quiet(reconciler)  # sends the 60 link requests
    assert len(live.numbers("telnyx")) == 60
    live.settle()
    assert reconciler.make_due(provider="telnyx") == 60
    until_quiet(reconciler)  # polls: one listing per campaign
    with Session(engine) as s:
        states = {ln.number: (ln.campaign_id, ln.state) for ln in s.exec(select(Link)).all()}
    assert states == {n: (c, "COMPLETED") for c, numbers in plan.items() for n in numbers}
    lists = live.counters()["requests"]["telnyx"]["phone_number_campaigns"]["GET"]
    assert lists == {"200": 2}
    assert telnyx_answers(live) == {"200"}
