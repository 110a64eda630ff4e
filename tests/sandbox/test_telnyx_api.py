"""Telnyx wire formats over real HTTP."""

from __future__ import annotations

import re

import pytest

from sandbox import SandboxHandle
from tests.sandbox.conftest import TELNYX_CAMPAIGN, Api

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")


def test_assign_get_formats(api: Api, sandbox: SandboxHandle) -> None:
    r = api.telnyx_assign("+15551234567")
    assert r.status_code == 200
    rec = r.json()
    assert rec["phoneNumber"] == "+15551234567"
    assert rec["campaignId"] == TELNYX_CAMPAIGN
    assert rec["assignmentStatus"] == "PENDING_ASSIGNMENT"
    assert TIME.match(rec["createdAt"]) and TIME.match(rec["updatedAt"])
    assert {"brandId", "tcrBrandId", "tcrCampaignId", "telnyxCampaignId"} <= set(rec)
    assert "failureReasons" not in rec
    for h in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"):
        assert h in r.headers
    sandbox.settle()
    for path_number in ("+15551234567", "%2B15551234567"):
        got = api.telnyx_get(path_number)
        assert got.status_code == 200
        assert got.json()["assignmentStatus"] == "ASSIGNED"
    # idempotent re-POST for the same campaign
    again = api.telnyx_assign("+15551234567")
    assert again.status_code == 200
    assert again.json()["assignmentStatus"] == "ASSIGNED"
    other = api.telnyx_assign("+15551234567", campaign="other")
    assert other.status_code == 400
    assert other.json()["errors"][0]["code"] == "10015"


def test_legacy_alias_path(api: Api, sandbox: SandboxHandle) -> None:
    r = api.telnyx(
        "POST",
        "/phoneNumberCampaign",
        json={"phoneNumber": "+15551234567", "campaignId": TELNYX_CAMPAIGN},
    )
    assert r.status_code == 200
    assert api.telnyx("GET", "/phoneNumberCampaign/%2B15551234567").status_code == 200
    assert api.telnyx_get("+15551234567").json()["assignmentStatus"] == "PENDING_ASSIGNMENT"
    listed = api.telnyx("GET", "/phoneNumberCampaign").json()
    assert listed["totalRecords"] == 1


def test_delete_then_404(api: Api, sandbox: SandboxHandle) -> None:
    api.telnyx_assign("+15551234567")
    sandbox.settle()
    r = api.telnyx("DELETE", "/phone_number_campaigns/+15551234567")
    assert r.status_code == 200
    assert r.json()["assignmentStatus"] == "PENDING_UNASSIGNMENT"
    assert api.telnyx_get("+15551234567").json()["assignmentStatus"] == "PENDING_UNASSIGNMENT"
    sandbox.settle()
    r = api.telnyx_get("+15551234567")
    assert r.status_code == 404
    err = r.json()["errors"][0]
    assert (err["code"], err["title"]) == ("10005", "Resource not found")
    assert err["detail"]
    assert api.telnyx("DELETE", "/phone_number_campaigns/+15551234567").status_code == 404


def test_put_moves_campaign(api: Api, sandbox: SandboxHandle) -> None:
    api.telnyx_assign("+15551234567")
    sandbox.settle()
    r = api.telnyx(
        "PUT",
        "/phone_number_campaigns/%2B15551234567",
        json={"phoneNumber": "+15551234567", "campaignId": "camp-2"},
    )
    assert r.status_code == 200
    assert (r.json()["campaignId"], r.json()["assignmentStatus"]) == (
        "camp-2",
        "PENDING_ASSIGNMENT",
    )
    sandbox.settle()
    assert api.telnyx_get("+15551234567").json()["campaignId"] == "camp-2"
    missing = api.telnyx(
        "PUT",
        "/phone_number_campaigns/+15557654321",
        json={"phoneNumber": "+15557654321", "campaignId": "camp-2"},
    )
    assert missing.status_code == 404


def test_failures_have_reasons(api: Api, sandbox: SandboxHandle) -> None:
    sandbox.configure(link_failure_ratio=1.0)
    api.telnyx_assign("+15551234567")
    sandbox.settle()
    rec = api.telnyx_get("+15551234567").json()
    assert rec["assignmentStatus"] == "FAILED_ASSIGNMENT"
    assert isinstance(rec["failureReasons"], str) and rec["failureReasons"]
    sandbox.configure(link_failure_ratio=0.0, unlink_failure_ratio=1.0)
    api.telnyx_assign("+15551234567")  # re-assign after failure
    sandbox.settle()
    api.telnyx("DELETE", "/phone_number_campaigns/+15551234567")
    sandbox.settle()
    assert api.telnyx_get("+15551234567").json()["assignmentStatus"] == "FAILED_UNASSIGNMENT"


@pytest.mark.parametrize("bad", ["15551234567", "+1555", "+44 20 7946 0958", "", None])
def test_validation(api: Api, bad: object) -> None:
    r = api.telnyx("POST", "/phone_number_campaigns", json={"phoneNumber": bad, "campaignId": "c"})
    assert r.status_code == 400
    assert r.json()["errors"][0]["code"] in ("10016", "10004")
    if isinstance(bad, str) and bad:
        assert r.json()["errors"][0]["code"] == "10016"


def test_auth(api: Api) -> None:
    for headers in ({"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
        r = api.telnyx("GET", "/phone_number_campaigns", headers=headers)
        assert r.status_code == 401
        assert r.json()["errors"][0]["code"] == "10009"
    r = api.http.get("/v2/10dlc/phone_number_campaigns")
    assert r.status_code == 401


def test_list_paging_and_filter(api: Api) -> None:
    for i in range(25):
        api.telnyx_assign(f"+1555123{i:04d}")
    for i in range(5):
        api.telnyx_assign(f"+1555999{i:04d}", campaign="other")
    seen: list[str] = []
    page = 1
    while True:
        r = api.telnyx(
            "GET",
            "/phone_number_campaigns",
            params={
                "page": page,
                "recordsPerPage": 10,
                "filter[telnyx_campaign_id]": TELNYX_CAMPAIGN,
                "sort": "phoneNumber",
            },
        ).json()
        assert r["totalRecords"] == 25 and r["page"] == page
        seen += [x["phoneNumber"] for x in r["records"]]
        if page * 10 >= r["totalRecords"]:
            break
        page += 1
    assert seen == sorted(f"+1555123{i:04d}" for i in range(25))
    default = api.telnyx("GET", "/phone_number_campaigns").json()
    assert default["totalRecords"] == 30 and len(default["records"]) == 20
    newest = default["records"][0]["phoneNumber"]
    assert newest == "+15559990004"  # default sort -createdAt
    too_big = api.telnyx("GET", "/phone_number_campaigns", params={"recordsPerPage": 1000})
    assert too_big.status_code == 400
