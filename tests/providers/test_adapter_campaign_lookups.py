"""Campaign lookups and account-wide listings (adopt, pre-flight): exact requests, parsing."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import respx

from models.statemachine import Direction, Signal
from providers.base import NumberStatus, TemporaryProviderError
from providers.plivo import PlivoClient, make_plivo_http
from providers.telnyx import TelnyxClient, make_telnyx_http

OWN = "6f1e6a52-3a43-4c8e-9f0e-0a7c3c2b9d11"
AUTH = "MATESTTESTTESTTEST00"
PLIVO = "https://api.plivo.com"
TELNYX = "https://api.telnyx.com"


@pytest.fixture
def telnyx() -> Iterator[TelnyxClient]:
    http = make_telnyx_http(TELNYX, "KEY")
    yield TelnyxClient(http, page_size=2)
    http.close()


@pytest.fixture
def plivo() -> Iterator[PlivoClient]:
    http = make_plivo_http(PLIVO, AUTH, "token")
    yield PlivoClient(http, AUTH, "https://example.com/webhooks/plivo", page_size=2)
    http.close()


@respx.mock
def test_telnyx_own_campaign_by_uuid(telnyx: TelnyxClient) -> None:
    route = respx.get(f"{TELNYX}/v2/10dlc/campaign/{OWN}").respond(
        json={
            "campaignId": OWN,
            "status": "ACTIVE",
            "campaignStatus": "MNO_PROVISIONED",
            "isTMobileNumberPoolingEnabled": False,
            "numberPool": False,
            "isTMobileSuspended": False,
            "usecase": "SOLE_PROPRIETOR",
        }
    )
    info = telnyx.campaign(OWN)
    assert route.called
    assert (info.exists, info.can_take_numbers, info.number_pooling) == (True, True, False)
    assert info.sole_proprietor is True


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"status": "EXPIRED", "campaignStatus": "MNO_PROVISIONED"}, "EXPIRED"),
        ({"status": "ACTIVE", "isTMobileSuspended": True}, "T-Mobile"),
        ({"status": "ACTIVE", "campaignStatus": "TCR_SUSPENDED"}, "TCR_SUSPENDED"),
    ],
)
@respx.mock
def test_telnyx_campaign_that_cannot_take_numbers(
    telnyx: TelnyxClient, body: dict[str, object], why: str
) -> None:
    respx.get(f"{TELNYX}/v2/10dlc/campaign/{OWN}").respond(json=body)
    info = telnyx.campaign(OWN)
    assert info.can_take_numbers is False
    assert why in (info.why or "")


@respx.mock
def test_telnyx_shared_campaign_by_tcr_id_and_missing_fields(telnyx: TelnyxClient) -> None:
    respx.get(f"{TELNYX}/v2/10dlc/partner_campaigns/C4X7Q2A").respond(json={"usecase": "MIXED"})
    info = telnyx.campaign("C4X7Q2A")
    # Nothing said about status or pooling: nothing is guessed.
    assert (info.exists, info.can_take_numbers, info.number_pooling) == (True, None, None)


@respx.mock
def test_telnyx_unknown_campaign_and_failed_lookup(telnyx: TelnyxClient) -> None:
    respx.get(f"{TELNYX}/v2/10dlc/campaign/{OWN}").respond(
        404, json={"errors": [{"code": "10005", "title": "Resource not found"}]}
    )
    assert telnyx.campaign(OWN).exists is False
    respx.get(f"{TELNYX}/v2/10dlc/partner_campaigns/C4X7Q2A").respond(503)
    with pytest.raises(TemporaryProviderError):
        telnyx.campaign("C4X7Q2A")


@respx.mock
def test_telnyx_account_listing_sends_no_campaign_filter(telnyx: TelnyxClient) -> None:
    def record(number: str, campaign: str) -> dict[str, str]:
        return {"phoneNumber": number, "campaignId": campaign, "assignmentStatus": "ASSIGNED"}

    route = respx.get(f"{TELNYX}/v2/10dlc/phone_number_campaigns").mock(
        side_effect=[
            httpx.Response(
                200,
                json={
                    "totalRecords": 3,
                    "records": [record("+12025550001", OWN), record("+12025550002", "C4X7Q2A")],
                },
            ),
            httpx.Response(200, json={"totalRecords": 3, "records": [record("+12025550003", OWN)]}),
        ]
    )
    listed = telnyx.list_account()
    assert [s.campaign_id for s in listed] == [OWN, "C4X7Q2A", OWN]
    for call in route.calls:
        assert not any(k.startswith("filter") for k in call.request.url.params)
    assert [c.request.url.params["page"] for c in route.calls] == ["1", "2"]


def test_telnyx_dormant_failure_is_recognised(telnyx: TelnyxClient) -> None:
    def failed(reason: str | None, direction: Direction = Direction.LINK) -> NumberStatus:
        return NumberStatus(
            "+12025550001", OWN, "FAILED_ASSIGNMENT", Signal.FAILED, direction, reason=reason
        )

    assert telnyx.is_dormant_failure(failed("Campaign is DORMANT; reactivated"))
    assert not telnyx.is_dormant_failure(failed("Phone number not in a messaging profile"))
    assert not telnyx.is_dormant_failure(failed(None))
    assert not telnyx.is_dormant_failure(failed("dormant", Direction.UNLINK))


@respx.mock
def test_plivo_campaign_list_pages_to_total_count(plivo: PlivoClient) -> None:
    url = f"{PLIVO}/v1/Account/{AUTH}/10dlc/Campaign/"

    def page(ids: list[str], nxt: str | None) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "api_id": "x",
                "meta": {"limit": 2, "offset": 0, "next": nxt, "previous": None, "total_count": 3},
                "campaigns": [{"campaign_id": i, "registration_status": "ACTIVE"} for i in ids],
            },
        )

    route = respx.get(url).mock(side_effect=[page(["CA", "CB"], "next"), page(["CC"], None)])
    assert plivo.list_campaigns() == ["CA", "CB", "CC"]
    assert [c.request.url.params["offset"] for c in route.calls] == ["0", "2"]


@pytest.mark.parametrize(
    ("status", "can"), [("ACTIVE", True), ("PROCESSING", None), ("EXPIRED", False)]
)
@respx.mock
def test_plivo_campaign_lookup(plivo: PlivoClient, status: str, can: bool | None) -> None:
    respx.get(f"{PLIVO}/v1/Account/{AUTH}/10dlc/Campaign/CUOGHIN/").respond(
        json={
            "api_id": "x",
            "campaign": {
                "campaign_id": "CUOGHIN",
                "registration_status": status,
                "usecase": "STARTER",
            },
        }
    )
    info = plivo.campaign("CUOGHIN")
    assert (info.can_take_numbers, info.usecase, info.number_pooling) == (can, "STARTER", None)


@respx.mock
def test_plivo_unknown_campaign(plivo: PlivoClient) -> None:
    respx.get(f"{PLIVO}/v1/Account/{AUTH}/10dlc/Campaign/CNONE/").respond(
        404, json={"api_id": "x", "error": "campaign not found"}
    )
    assert plivo.campaign("CNONE").exists is False
