"""The sandbox's campaigns (lookups, Plivo's campaign list, caps, dormancy) and preloaded
links, through both adapters over real sockets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from models.statemachine import Signal
from providers.base import PermanentProviderError
from providers.plivo import PlivoClient, make_plivo_http
from providers.telnyx import TelnyxClient, make_telnyx_http
from sandbox import SandboxHandle, start_sandbox
from tests.sandbox.conftest import Api, make_config

OWN = "6f1e6a52-3a43-4c8e-9f0e-0a7c3c2b9d11"


@pytest.fixture
def live() -> Iterator[SandboxHandle]:
    # Pending links stay pending until a test settles them: a short delay raced the listing
    # under load.
    handle = start_sandbox(make_config(delay=60))
    yield handle
    handle.stop()


@pytest.fixture
def api(live: SandboxHandle) -> Iterator[Api]:
    client = Api(live)
    yield client
    client.http.close()


@pytest.fixture
def plivo(live: SandboxHandle) -> Iterator[PlivoClient]:
    env = live.env()
    http = make_plivo_http(env["PLIVO_API_URL"], env["PLIVO_AUTH_ID"], env["PLIVO_AUTH_TOKEN"])
    yield PlivoClient(http, env["PLIVO_AUTH_ID"], "http://127.0.0.1:9/webhooks/plivo", page_size=3)
    http.close()


@pytest.fixture
def telnyx(live: SandboxHandle) -> Iterator[TelnyxClient]:
    env = live.env()
    http = make_telnyx_http(env["TELNYX_API_URL"], env["TELNYX_API_KEY"])
    yield TelnyxClient(http, page_size=4)
    http.close()


def preload(api: Api, provider: str, links: list[dict[str, str]]) -> None:
    r = api.control("POST", "preload", json={"provider": provider, "links": links})
    assert r.status_code == 200, r.text
    assert r.json() == {"preloaded": len(links)}


def numbers(n: int, start: int = 0) -> list[str]:
    return [f"+1202555{1000 + start + i:04d}" for i in range(n)]


def test_preloaded_links_are_listed_by_account_without_callbacks(
    api: Api, telnyx: TelnyxClient
) -> None:
    links = [
        {"number": n, "campaign_id": OWN if i % 2 else "C4X7Q2A"} for i, n in enumerate(numbers(9))
    ]
    links.append({"number": "+12025559999", "campaign_id": OWN, "status": "pending"})
    preload(api, "telnyx", links)
    listed = {s.number: s for s in telnyx.list_account()}
    assert len(listed) == 10  # three pages of four
    assert listed["+12025551001"].campaign_id == OWN
    assert listed["+12025551000"].campaign_id == "C4X7Q2A"
    assert listed["+12025551000"].signal is Signal.LINKED
    assert listed["+12025559999"].signal is Signal.PENDING
    assert api.control("GET", "callbacks").json()["callbacks"] == []


def test_preload_refuses_bad_input(api: Api) -> None:
    r = api.control("POST", "preload", json={"provider": "plivo", "links": [{"number": "12"}]})
    assert r.status_code == 400
    assert "links[0]" in r.json()["error"]
    r = api.control("POST", "preload", json={"provider": "nope", "links": []})
    assert r.status_code == 400


def test_plivo_campaign_list_pages_over_every_campaign(api: Api, plivo: PlivoClient) -> None:
    campaigns = [f"CAMP{i:03d}" for i in range(7)]
    preload(
        api,
        "plivo",
        [{"number": n, "campaign_id": campaigns[i % 7]} for i, n in enumerate(numbers(14))],
    )
    api.control("POST", "campaigns", json={"provider": "plivo", "campaign_id": "CEMPTY1"})
    assert plivo.list_campaigns() == sorted([*campaigns, "CEMPTY1"])
    account = plivo.list_account()
    assert len(account) == 14
    assert {s.campaign_id for s in account} == set(campaigns)


def test_campaign_lookups_follow_the_control_api(
    api: Api, plivo: PlivoClient, telnyx: TelnyxClient
) -> None:
    assert plivo.campaign("CAMP001").can_take_numbers is True
    api.control(
        "POST",
        "campaigns",
        json={"provider": "plivo", "campaign_id": "CAMP001", "status": "EXPIRED"},
    )
    info = plivo.campaign("CAMP001")
    assert (info.exists, info.can_take_numbers, info.status) == (True, False, "EXPIRED")
    api.control(
        "POST",
        "campaigns",
        json={"provider": "plivo", "campaign_id": "CAMP001", "exists": False},
    )
    assert plivo.campaign("CAMP001").exists is False

    own = telnyx.campaign(OWN)
    assert (own.can_take_numbers, own.number_pooling, own.usecase) == (True, True, "MIXED")
    api.control(
        "POST",
        "campaigns",
        json={
            "provider": "telnyx",
            "campaign_id": OWN,
            "pooling": False,
            "usecase": "SOLE_PROPRIETOR",
            "tmobile_suspended": True,
        },
    )
    own = telnyx.campaign(OWN)
    assert (own.can_take_numbers, own.number_pooling, own.sole_proprietor) == (False, False, True)
    shared = telnyx.campaign("C4X7Q2A")  # a TCR id: the partner-campaign lookup
    assert shared.exists and shared.number_pooling is True
    counters = api.control("GET", "counters").json()["requests"]["telnyx"]
    assert "partner_campaign" in counters and "campaign" in counters


def test_bad_campaign_field_is_refused(api: Api) -> None:
    r = api.control(
        "POST", "campaigns", json={"provider": "telnyx", "campaign_id": OWN, "pooling": "yes"}
    )
    assert r.status_code == 400


def test_campaign_cap_refuses_links_over_it(api: Api, plivo: PlivoClient) -> None:
    api.control(
        "POST", "campaigns", json={"provider": "plivo", "campaign_id": "CCAP", "max_numbers": 2}
    )
    plivo.link("CCAP", numbers(2))
    with pytest.raises(PermanentProviderError, match="limit of 2"):
        plivo.link("CCAP", numbers(1, start=50))


def test_dormant_campaign_fails_the_first_assignment_only(
    live: SandboxHandle, api: Api, telnyx: TelnyxClient
) -> None:
    api.control(
        "POST", "campaigns", json={"provider": "telnyx", "campaign_id": OWN, "dormant": True}
    )
    first, second = numbers(2)
    telnyx.link(OWN, [first])
    live.settle()
    failed = telnyx.get(OWN, first)
    assert failed.signal is Signal.FAILED
    assert telnyx.is_dormant_failure(failed)
    telnyx.link(OWN, [second])
    live.settle()
    assert telnyx.get(OWN, second).signal is Signal.LINKED
