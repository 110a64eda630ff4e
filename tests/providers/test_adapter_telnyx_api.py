"""Telnyx adapter against a mocked HTTP transport (respx): exact requests, every error class."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import respx

from models.statemachine import Direction, Signal
from providers.base import (
    CredentialsRejected,
    MalformedResponse,
    NotLinked,
    PermanentProviderError,
    TemporaryProviderError,
)
from providers.telnyx import TelnyxClient, make_telnyx_http

FIXTURES = Path(__file__).parent.parent / "fixtures" / "telnyx"
API = "https://api.telnyx.com"
KEY = "KEY0123456789ABCDEF"
CAMPAIGN = "4b300178-131c-d902-d54e-72d90ba1620a"
NUMBER = "+15551234567"
COLLECTION = "/v2/10dlc/phone_number_campaigns"
ONE = COLLECTION + "/%2B15551234567"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


class RecordingLimiter:
    def __init__(self) -> None:
        self.acquired = 0
        self.penalties: list[float] = []

    def acquire(self) -> None:
        self.acquired += 1

    def penalize(self, seconds: float) -> None:
        self.penalties.append(seconds)


@pytest.fixture
def limiter() -> RecordingLimiter:
    return RecordingLimiter()


@pytest.fixture
def client(limiter: RecordingLimiter):
    http = make_telnyx_http(API, KEY)
    yield TelnyxClient(http, limiter=limiter, page_size=2)
    http.close()


@pytest.fixture
def mock():
    with respx.mock(base_url=API, assert_all_called=True) as router:
        yield router


def record(status: str = "PENDING_ASSIGNMENT", **extra: object) -> dict:
    return {**fixture("link_response.json"), "assignmentStatus": status, **extra}


# --- operations ------------------------------------------------------------------------------


def test_link_posts_one_number(client, mock, limiter) -> None:
    route = mock.post(COLLECTION).respond(200, json=fixture("link_response.json"))
    [status] = client.link(CAMPAIGN, [NUMBER])
    request = route.calls.last.request
    assert str(request.url) == f"{API}{COLLECTION}"
    assert json.loads(request.content) == {"phoneNumber": NUMBER, "campaignId": CAMPAIGN}
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert (status.signal, status.direction) == (Signal.PENDING, Direction.LINK)
    assert status.provider_status == "PENDING_ASSIGNMENT"
    assert status.campaign_id == CAMPAIGN
    assert status.provider_time == datetime(2024, 8, 7, 17, 20, 1, 123456, tzinfo=UTC)
    assert limiter.acquired == 1
    assert client.batch_link is False and client.supports_move is True


def test_link_accepts_data_wrapper(client, mock) -> None:
    mock.post(COLLECTION).respond(200, json={"data": record("ASSIGNED")})
    [status] = client.link(CAMPAIGN, [NUMBER])
    assert status.signal is Signal.LINKED


def test_get_encodes_plus(client, mock) -> None:
    route = mock.get(ONE).respond(200, json=record("ASSIGNED"))
    status = client.get(CAMPAIGN, NUMBER)
    url = route.calls.last.request.url
    assert url.raw_path == b"/v2/10dlc/phone_number_campaigns/%2B15551234567"
    assert status.signal is Signal.LINKED and status.direction is None


def test_get_failed_assignment_carries_reason(client, mock) -> None:
    mock.get(ONE).respond(200, json=fixture("get_failed.json"))
    status = client.get(CAMPAIGN, NUMBER)
    assert (status.signal, status.direction) == (Signal.FAILED, Direction.LINK)
    assert status.reason == "Phone number is not associated with a messaging profile"


def test_get_reports_another_campaign(client, mock) -> None:
    other = record("ASSIGNED", campaignId="OTHER", telnyxCampaignId="OTHER", tcrCampaignId="C1")
    mock.get(ONE).respond(200, json=other)
    assert client.get(CAMPAIGN, NUMBER).campaign_id == "OTHER"


def test_get_shared_campaign_by_tcr_id(client, mock) -> None:
    mock.get(ONE).respond(200, json=record("ASSIGNED", campaignId="CCAMPA1"))
    assert client.get("CCAMPA1", NUMBER).campaign_id == "CCAMPA1"


def test_status_fallback_and_naive_updated_at(client, mock) -> None:
    body = record()
    del body["assignmentStatus"]
    body["status"] = "PENDING_UNASSIGNMENT"
    body["updatedAt"] = "2024-08-07T17:20:01Z"
    mock.get(ONE).respond(200, json=body)
    status = client.get(CAMPAIGN, NUMBER)
    assert (status.signal, status.direction) == (Signal.PENDING, Direction.UNLINK)
    assert status.provider_time == datetime(2024, 8, 7, 17, 20, 1, tzinfo=UTC)


def test_unknown_status_and_bad_time_are_tolerated(client, mock) -> None:
    mock.get(ONE).respond(200, json=record("WEIRD", updatedAt="yesterday"))
    status = client.get(CAMPAIGN, NUMBER)
    assert status.signal is None and status.direction is None
    assert status.provider_time is None


def test_unlink(client, mock) -> None:
    route = mock.delete(ONE).respond(200, json=record("PENDING_UNASSIGNMENT"))
    status = client.unlink(CAMPAIGN, NUMBER)
    request = route.calls.last.request
    assert request.method == "DELETE"
    assert request.url.raw_path.endswith(b"/%2B15551234567")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert (status.signal, status.direction) == (Signal.PENDING, Direction.UNLINK)


def test_unlink_empty_answer(client, mock) -> None:
    mock.delete(ONE).respond(204)
    status = client.unlink(CAMPAIGN, NUMBER)
    assert (status.signal, status.direction) == (Signal.PENDING, Direction.UNLINK)


def test_unlink_404_is_not_linked(client, mock) -> None:
    mock.delete(ONE).respond(404, json=fixture("not_found.json"))
    with pytest.raises(NotLinked) as err:
        client.unlink(CAMPAIGN, NUMBER)
    assert err.value.code == "10005"
    assert "Resource not found" in str(err.value)


def test_move_puts_new_campaign(client, mock) -> None:
    route = mock.put(ONE).respond(200, json=record(campaignId="NEW", telnyxCampaignId="NEW"))
    status = client.move(NUMBER, CAMPAIGN, "NEW")
    request = route.calls.last.request
    assert json.loads(request.content) == {"phoneNumber": NUMBER, "campaignId": "NEW"}
    assert status.campaign_id == "NEW"
    assert status.signal is Signal.PENDING


def test_list_pages_until_total_covered(client, mock, limiter) -> None:
    records = [record("ASSIGNED", phoneNumber=f"+1555123456{i}") for i in range(5)]
    pages = [records[0:2], records[2:4], records[4:5]]
    route = mock.get(COLLECTION).mock(
        side_effect=[
            httpx.Response(200, json={"page": i + 1, "totalRecords": 5, "records": p})
            for i, p in enumerate(pages)
        ]
    )
    result = client.list_campaign(CAMPAIGN)
    assert [s.number for s in result] == [f"+1555123456{i}" for i in range(5)]
    first = route.calls[0].request.url
    assert first.params["filter[telnyx_campaign_id]"] == CAMPAIGN
    assert first.params["page"] == "1"
    assert first.params["recordsPerPage"] == "2"
    assert [c.request.url.params["page"] for c in route.calls] == ["1", "2", "3"]
    assert b"filter%5Btelnyx_campaign_id%5D=" in first.raw_path
    assert limiter.acquired == 3


def test_list_stops_exactly_at_total(client, mock) -> None:
    records = [record("ASSIGNED", phoneNumber=f"+1555123456{i}") for i in range(4)]
    route = mock.get(COLLECTION).mock(
        side_effect=[
            httpx.Response(200, json={"page": 1, "totalRecords": 4, "records": records[:2]}),
            httpx.Response(
                200, json={"data": {"page": 2, "totalRecords": 4, "records": records[2:]}}
            ),
        ]
    )
    assert len(client.list_campaign(CAMPAIGN)) == 4
    assert route.call_count == 2


def test_list_fixture(mock) -> None:
    http = make_telnyx_http(API, KEY)
    mock.get(COLLECTION).respond(200, json=fixture("list_response.json"))
    result = TelnyxClient(http).list_campaign(CAMPAIGN)
    assert [(s.number, s.signal) for s in result] == [
        ("+15551234567", Signal.LINKED),
        ("+15551234568", Signal.PENDING),
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"page": 1, "totalRecords": 1},
        {"page": 1, "totalRecords": "1", "records": []},
        {"page": 1, "records": [{"phoneNumber": "+15551234567"}]},
        [],
    ],
)
def test_list_malformed(client, mock, body) -> None:
    mock.get(COLLECTION).respond(200, json=body)
    with pytest.raises(MalformedResponse):
        client.list_campaign(CAMPAIGN)


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "timed_out"),
    [(httpx.ReadTimeout, True), (httpx.ConnectTimeout, False), (httpx.ConnectError, False)],
)
def test_transport_errors(client, mock, exc, timed_out) -> None:
    mock.post(COLLECTION).mock(side_effect=exc)
    with pytest.raises(TemporaryProviderError) as err:
        client.link(CAMPAIGN, [NUMBER])
    assert err.value.timed_out is timed_out


def test_429_with_ratelimit_reset(client, mock, limiter) -> None:
    mock.post(COLLECTION).respond(
        429,
        json=fixture("rate_limited.json"),
        headers={
            "x-ratelimit-limit": "10",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": "12",
        },
    )
    with pytest.raises(TemporaryProviderError) as err:
        client.link(CAMPAIGN, [NUMBER])
    assert err.value.retry_after == 12.0
    assert err.value.code == "10011"
    assert err.value.status == 429
    assert limiter.penalties == [12.0]


def test_retry_after_wins_over_reset(client, mock) -> None:
    mock.post(COLLECTION).respond(429, headers={"Retry-After": "3", "x-ratelimit-reset": "12"})
    with pytest.raises(TemporaryProviderError) as err:
        client.link(CAMPAIGN, [NUMBER])
    assert err.value.retry_after == 3.0


def test_success_with_exhausted_window_penalizes(client, mock, limiter) -> None:
    mock.get(ONE).respond(
        200,
        json=record("ASSIGNED"),
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": "4"},
    )
    client.get(CAMPAIGN, NUMBER)
    assert limiter.penalties == [4.0]


def test_reset_ignored_while_requests_remain(client, mock, limiter) -> None:
    mock.get(ONE).respond(
        200,
        json=record("ASSIGNED"),
        headers={"x-ratelimit-remaining": "5", "x-ratelimit-reset": "4"},
    )
    client.get(CAMPAIGN, NUMBER)
    assert limiter.penalties == []


@pytest.mark.parametrize("status", [408, 409, 500, 503])
def test_temporary_statuses(client, mock, status) -> None:
    mock.get(ONE).respond(status, json={"errors": [{"code": "10007", "title": "Unexpected error"}]})
    with pytest.raises(TemporaryProviderError) as err:
        client.get(CAMPAIGN, NUMBER)
    assert err.value.status == status and err.value.code == "10007"


def test_400_permanent_with_code_and_text(client, mock) -> None:
    mock.post(COLLECTION).respond(400, json=fixture("validation_error.json"))
    with pytest.raises(PermanentProviderError) as err:
        client.link(CAMPAIGN, [NUMBER])
    assert type(err.value) is PermanentProviderError
    assert err.value.code == "10016"
    assert "+E.164" in err.value.message


@pytest.mark.parametrize("status", [401, 403])
def test_credentials(client, mock, status) -> None:
    mock.get(ONE).respond(
        status, json={"errors": [{"code": "10009", "title": "Authentication failed"}]}
    )
    with pytest.raises(CredentialsRejected) as err:
        client.get(CAMPAIGN, NUMBER)
    assert err.value.code == "10009"


def test_get_404_not_linked(client, mock) -> None:
    mock.get(ONE).respond(404, json=fixture("not_found.json"))
    with pytest.raises(NotLinked):
        client.get(CAMPAIGN, NUMBER)


def test_link_404_is_permanent(client, mock) -> None:
    mock.post(COLLECTION).respond(404, json=fixture("not_found.json"))
    with pytest.raises(PermanentProviderError):
        client.link(CAMPAIGN, [NUMBER])


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"null",
        b'{"data": []}',
        b'{"phoneNumber": "+15551234567", "campaignId": "x"}',
        b'{"phoneNumber": "+15551234567", "assignmentStatus": "ASSIGNED"}',
        b'{"phoneNumber": 5, "campaignId": "x", "assignmentStatus": "ASSIGNED"}',
        b'{"phoneNumber": "+15550000000", "campaignId": "x", "assignmentStatus": "ASSIGNED"}',
        b'{"phoneNumber": "+15551234567", "campaignId": "x", "assignmentStatus": ["A"]}',
    ],
)
def test_malformed_get(client, mock, body) -> None:
    mock.get(ONE).respond(200, content=body)
    with pytest.raises(MalformedResponse):
        client.get(CAMPAIGN, NUMBER)


def test_non_e164_refused_before_request(client, limiter) -> None:
    with pytest.raises(PermanentProviderError):
        client.get(CAMPAIGN, "5551234567")
    assert limiter.acquired == 0


# --- listing: which filter, and paging (issue 12 §1) ----------------------------------------


def page(records: list[dict], total: int | None, number: int = 1) -> httpx.Response:
    body: dict = {"page": number, "records": records}
    if total is not None:
        body["totalRecords"] = total
    return httpx.Response(200, json=body)


def numbered(count: int, **extra: object) -> list[dict]:
    return [record("ASSIGNED", phoneNumber=f"+1555123456{i}", **extra) for i in range(count)]


@pytest.mark.parametrize(
    ("campaign", "key"),
    [
        (CAMPAIGN, "filter[telnyx_campaign_id]"),
        (CAMPAIGN.upper(), "filter[telnyx_campaign_id]"),
        ("C4X7Q2A", "filter[tcr_campaign_id]"),  # a campaign shared with us by another CSP
        ("4b300178-131c-d902-d54e-72d90ba1620j", "filter[tcr_campaign_id]"),  # not hex
        ("{" + CAMPAIGN + "}", "filter[tcr_campaign_id]"),  # uuid.UUID takes it, the spec not
        (CAMPAIGN.replace("-", ""), "filter[tcr_campaign_id]"),
    ],
)
def test_list_filters_by_uuid_or_tcr_id(client, mock, campaign, key) -> None:
    route = mock.get(COLLECTION).respond(200, json={"page": 1, "totalRecords": 0, "records": []})
    client.list_campaign(campaign)
    params = route.calls.last.request.url.params
    assert params[key] == campaign
    assert [k for k in params if k.startswith("filter")] == [key]


def test_list_shared_campaign_records(client, mock) -> None:
    """Records of a shared campaign carry the TCR id as campaignId and an empty brandId."""
    shared = numbered(2, campaignId="C4X7Q2A", tcrCampaignId="C4X7Q2A", brandId="")
    for rec in shared:
        rec["telnyxCampaignId"] = ""
    mock.get(COLLECTION).mock(side_effect=[page(shared, 2)])
    result = client.list_campaign("C4X7Q2A")
    assert [(s.number, s.campaign_id) for s in result] == [
        ("+15551234560", "C4X7Q2A"),
        ("+15551234561", "C4X7Q2A"),
    ]


def test_list_keeps_paging_past_short_pages_until_total(client, mock) -> None:
    """Telnyx may cap recordsPerPage below what we ask: a short page is not the end."""
    records = numbered(3)
    route = mock.get(COLLECTION).mock(
        side_effect=[page([r], 3, i + 1) for i, r in enumerate(records)]
    )
    assert [s.number for s in client.list_campaign(CAMPAIGN)] == [r["phoneNumber"] for r in records]
    assert [c.request.url.params["page"] for c in route.calls] == ["1", "2", "3"]


def test_list_without_total_ends_on_an_empty_page(client, mock) -> None:
    records = numbered(3)
    route = mock.get(COLLECTION).mock(
        side_effect=[page(records[:2], None), page(records[2:], None, 2), page([], None, 3)]
    )
    assert len(client.list_campaign(CAMPAIGN)) == 3
    assert route.call_count == 3


def test_list_ends_on_an_empty_page_before_the_total(client, mock) -> None:
    """Numbers removed while we page: the total is never reached, the empty page ends it."""
    route = mock.get(COLLECTION).mock(side_effect=[page(numbered(1), 5), page([], 5, 2)])
    assert len(client.list_campaign(CAMPAIGN)) == 1
    assert route.call_count == 2


def test_list_refuses_more_records_than_asked(client, mock) -> None:
    mock.get(COLLECTION).mock(side_effect=[page(numbered(3), 3)])
    with pytest.raises(MalformedResponse, match="3 records on a page of at most 2"):
        client.list_campaign(CAMPAIGN)
