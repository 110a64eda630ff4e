"""The sandbox refuses what Telnyx's published OpenAPI document refuses (issue 12 §1), in
Telnyx's error shape, and models campaigns shared with the account (known by a TCR id)."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox import SandboxHandle
from sandbox.callbacks import tcr_campaign_id
from sandbox.telnyx_spec import SPEC_FILE, spec_text
from tests.sandbox.conftest import TELNYX_CAMPAIGN, Api

SHARED = "C4X7Q2A"


def first_error(body: dict[str, Any]) -> dict[str, Any]:
    (error,) = body["errors"]
    assert set(error) == {"code", "title", "detail", "source"}
    assert all(isinstance(error[k], str) and error[k] for k in ("code", "title", "detail"))
    return error


def test_vendored_spec_keeps_its_source_note() -> None:
    head = spec_text().splitlines()[:3]
    assert head[0].startswith("# Telnyx API")
    assert "Source: github.com/team-telnyx/openapi" in head[1]
    assert SPEC_FILE.endswith(".openapi.yml")


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        # A shared campaign's TCR id is not a UUID: the real API answers 422.
        ({"filter[telnyx_campaign_id]": SHARED}, "filter[telnyx_campaign_id]"),
        ({"filter[telnyx_campaign_id]": TELNYX_CAMPAIGN[:-1] + "j"}, "filter[telnyx_campaign_id]"),
        ({"filter[telnyx_brand_id]": "BSANDBX"}, "filter[telnyx_brand_id]"),
        ({"sort": "updatedAt"}, "sort"),
        ({"page": "first"}, "page"),
        ({"recordsPerPage": "1.5"}, "recordsPerPage"),
    ],
)
def test_list_parameters_the_spec_refuses(api: Api, params: dict[str, str], parameter: str) -> None:
    for path in ("/phone_number_campaigns", "/phoneNumberCampaign"):  # the alias too
        r = api.telnyx("GET", path, params=params)
        assert r.status_code == 422, r.text
        error = first_error(r.json())
        assert (error["code"], error["title"]) == ("10027", "Unprocessable Entity")
        assert error["source"] == {"parameter": parameter}


@pytest.mark.parametrize(
    ("body", "status", "pointer"),
    [
        ({"phoneNumber": "+15551234567", "campaignId": 7}, 422, "/campaignId"),
        ({"phoneNumber": ["+15551234567"], "campaignId": SHARED}, 422, "/phoneNumber"),
        (["+15551234567"], 422, "/"),
        ({"phoneNumber": "+15551234567"}, 400, "/campaignId"),
        ({"phoneNumber": "+15551234567", "campaignId": None}, 400, "/campaignId"),
    ],
)
def test_bodies_the_spec_refuses(api: Api, body: Any, status: int, pointer: str) -> None:
    for method, path in (
        ("POST", "/phone_number_campaigns"),
        ("PUT", "/phone_number_campaigns/%2B15551234567"),
    ):
        r = api.telnyx(method, path, json=body)
        assert r.status_code == status, r.text
        error = first_error(r.json())
        assert error["code"] == ("10027" if status == 422 else "10004")
        assert error["source"] == {"pointer": pointer}
    assert api.h.numbers("telnyx") == []  # nothing was assigned


def test_refusals_are_counted(api: Api, sandbox: SandboxHandle) -> None:
    api.telnyx("GET", "/phone_number_campaigns", params={"filter[telnyx_campaign_id]": SHARED})
    counts = sandbox.counters()["requests"]["telnyx"]["phone_number_campaigns"]["GET"]
    assert counts == {"422": 1}


def test_shared_campaign_records(api: Api, sandbox: SandboxHandle) -> None:
    """Records of a TCR-id campaign carry campaignId = the TCR id and an empty brandId."""
    assert api.telnyx_assign("+15551230001", campaign=SHARED).status_code == 200
    assert api.telnyx_assign("+15551230002").status_code == 200  # our own (UUID) campaign
    shared = api.telnyx_get("+15551230001").json()
    assert (shared["campaignId"], shared["tcrCampaignId"]) == (SHARED, SHARED)
    assert shared["brandId"] == "" and shared["telnyxCampaignId"] == ""
    own = api.telnyx_get("+15551230002").json()
    assert own["campaignId"] == own["telnyxCampaignId"] == TELNYX_CAMPAIGN
    assert own["brandId"] and own["tcrCampaignId"] == tcr_campaign_id(TELNYX_CAMPAIGN)

    def listed(**params: str) -> list[str]:
        r = api.telnyx("GET", "/phone_number_campaigns", params=params)
        assert r.status_code == 200, r.text
        return [x["phoneNumber"] for x in r.json()["records"]]

    assert listed(**{"filter[tcr_campaign_id]": SHARED}) == ["+15551230001"]
    assert listed(**{"filter[telnyx_campaign_id]": TELNYX_CAMPAIGN}) == ["+15551230002"]
    assert listed(**{"filter[tcr_campaign_id]": own["tcrCampaignId"]}) == ["+15551230002"]


def test_page_cap_serves_fewer_records_than_asked(api: Api, sandbox: SandboxHandle) -> None:
    for i in range(5):
        api.telnyx_assign(f"+1555123{i:04d}")
    sandbox.configure(telnyx_page_cap=2)
    r = api.telnyx("GET", "/phone_number_campaigns", params={"recordsPerPage": 50}).json()
    assert (len(r["records"]), r["totalRecords"]) == (2, 5)
