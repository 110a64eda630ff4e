"""Plivo adapter against a mocked HTTP transport (respx): exact requests, every error class."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
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
from providers.plivo import PlivoClient, make_plivo_http

FIXTURES = Path(__file__).parent.parent / "fixtures" / "plivo"
API = "https://api.plivo.com"
AUTH_ID = "MAXXXXXXXXXXXXXXXXXX"
TOKEN = "token"
CB = "https://svc.example.com/webhooks/plivo"
NUMBERS_PATH = f"/v1/Account/{AUTH_ID}/10dlc/Campaign/CUOGHIN/Number/"
ONE_PATH = NUMBERS_PATH + "12025551111/"


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
    http = make_plivo_http(API, AUTH_ID, TOKEN)
    yield PlivoClient(http, AUTH_ID, CB, limiter=limiter)
    http.close()


@pytest.fixture
def mock():
    with respx.mock(base_url=API, assert_all_called=True) as router:
        yield router


def assert_auth(request: httpx.Request) -> None:
    expected = "Basic " + base64.b64encode(f"{AUTH_ID}:{TOKEN}".encode()).decode()
    assert request.headers["authorization"] == expected


# --- operations ------------------------------------------------------------------------------


def test_link_many_numbers_in_one_request(client, mock, limiter) -> None:
    route = mock.post(NUMBERS_PATH).respond(202, json=fixture("link_response.json"))
    result = client.link("CUOGHIN", ["+12025551111", "+12025552222"])
    request = route.calls.last.request
    assert str(request.url) == f"{API}{NUMBERS_PATH}"
    assert str(request.url).endswith("/")
    assert json.loads(request.content) == {
        "numbers": ["12025551111", "12025552222"],
        "url": CB,
        "method": "POST",
    }
    assert request.headers["content-type"] == "application/json"
    assert_auth(request)
    assert [s.number for s in result] == ["+12025551111", "+12025552222"]
    assert all(s.signal is Signal.PENDING and s.direction is Direction.LINK for s in result)
    assert all(s.campaign_id == "CUOGHIN" for s in result)
    assert limiter.acquired == 1
    assert client.batch_link is True and client.supports_move is False


def test_link_accepts_empty_2xx(client, mock) -> None:
    mock.post(NUMBERS_PATH).respond(204)
    assert client.link("CUOGHIN", ["+12025551111"])[0].signal is Signal.PENDING


def test_link_rejects_non_e164_without_a_request(client, mock, limiter) -> None:
    with pytest.raises(PermanentProviderError):
        client.link("CUOGHIN", ["12025551111"])
    assert limiter.acquired == 0


def test_unlink_sends_delete_with_callback(client, mock) -> None:
    route = mock.delete(ONE_PATH).respond(202, json=fixture("unlink_response.json"))
    status = client.unlink("CUOGHIN", "+12025551111")
    request = route.calls.last.request
    assert request.method == "DELETE"
    assert str(request.url) == f"{API}{ONE_PATH}"
    assert json.loads(request.content) == {"url": CB, "method": "POST"}
    assert_auth(request)
    assert (status.signal, status.direction) == (Signal.PENDING, Direction.UNLINK)


def test_unlink_not_linked_text_raises_not_linked(client, mock) -> None:
    mock.delete(ONE_PATH).respond(400, json=fixture("get_error_not_linked.json"))
    with pytest.raises(NotLinked) as err:
        client.unlink("CUOGHIN", "+12025551111")
    assert "not linked" in str(err.value)
    assert err.value.status == 400


def test_get_one(client, mock) -> None:
    route = mock.get(ONE_PATH).respond(200, json=fixture("get_response.json"))
    status = client.get("CUOGHIN", "+12025551111")
    assert str(route.calls.last.request.url) == f"{API}{ONE_PATH}"
    assert_auth(route.calls.last.request)
    assert status.number == "+12025551111"
    assert status.provider_status == "PROCESSING"
    assert (status.signal, status.direction) == (Signal.PENDING, None)
    assert status.campaign_id == "CUOGHIN"
    assert status.provider_time is None


def test_get_unknown_status_is_never_guessed(client, mock) -> None:
    body = fixture("get_response.json")
    body["phone_numbers"][0]["status"] = "SOMETHING_NEW"
    mock.get(ONE_PATH).respond(200, json=body)
    status = client.get("CUOGHIN", "+12025551111")
    assert status.signal is None and status.provider_status == "SOMETHING_NEW"


def test_get_empty_list_is_not_linked(client, mock) -> None:
    mock.get(ONE_PATH).respond(200, json={"api_id": "x", "phone_numbers": []})
    with pytest.raises(NotLinked):
        client.get("CUOGHIN", "+12025551111")


def test_get_other_number_is_malformed(client, mock) -> None:
    body = fixture("get_response.json")
    body["phone_numbers"][0]["number"] = "12025550000"
    mock.get(ONE_PATH).respond(200, json=body)
    with pytest.raises(MalformedResponse):
        client.get("CUOGHIN", "+12025551111")


@pytest.mark.parametrize("status", [400, 404])
def test_get_not_linked(client, mock, status) -> None:
    mock.get(ONE_PATH).respond(status, json=fixture("get_error_not_linked.json"))
    with pytest.raises(NotLinked):
        client.get("CUOGHIN", "+12025551111")


def page(offset: int, count: int, **extra: object) -> dict:
    return {
        "campaign_id": "CUOGHIN",
        "phone_numbers": [
            {"number": f"1202555{offset + i:04d}", "status": "COMPLETED"} for i in range(count)
        ],
        **extra,
    }


def test_list_pages_until_an_empty_page_without_a_total(client, mock, limiter) -> None:
    # Issue 12: without a total, a short page is not the end (Plivo may cap ``limit``).
    route = mock.get(NUMBERS_PATH).mock(
        side_effect=[
            httpx.Response(200, json=page(0, 20)),
            httpx.Response(200, json=page(20, 20)),
            httpx.Response(200, json=page(40, 3)),
            httpx.Response(200, json=page(43, 0)),
        ]
    )
    result = client.list_campaign("CUOGHIN")
    assert len(result) == 43
    assert result[0].number == "+12025550000" and result[-1].number == "+12025550042"
    urls = [str(c.request.url) for c in route.calls]
    assert urls == [
        f"{API}{NUMBERS_PATH}?limit=20&offset=0",
        f"{API}{NUMBERS_PATH}?limit=20&offset=20",
        f"{API}{NUMBERS_PATH}?limit=20&offset=40",
        f"{API}{NUMBERS_PATH}?limit=20&offset=43",
    ]
    assert limiter.acquired == 4


def test_list_keeps_paging_past_capped_pages_until_the_total(client, mock) -> None:
    """We ask for 20, Plivo answers 10 at a time: the summary says 25, so 3 pages."""
    summary = {"phone_numbers_summary": {"COMPLETED": 20, "PROCESSING": 5}}
    route = mock.get(NUMBERS_PATH).mock(
        side_effect=[
            httpx.Response(200, json=page(0, 10, **summary)),
            httpx.Response(200, json=page(10, 10, **summary)),
            httpx.Response(200, json=page(20, 5, **summary)),
        ]
    )
    assert len(client.list_campaign("CUOGHIN")) == 25
    assert [c.request.url.params["offset"] for c in route.calls] == ["0", "10", "20"]


def test_list_total_from_meta(client, mock) -> None:
    meta = {"meta": {"total_count": 12}}
    route = mock.get(NUMBERS_PATH).mock(
        side_effect=[
            httpx.Response(200, json=page(0, 7, **meta)),
            httpx.Response(200, json=page(7, 5, **meta)),
        ]
    )
    assert len(client.list_campaign("CUOGHIN")) == 12
    assert route.call_count == 2


def test_list_refuses_more_numbers_than_asked(client, mock) -> None:
    mock.get(NUMBERS_PATH).respond(200, json=page(0, 21))
    with pytest.raises(MalformedResponse, match="21 records on a page of at most 20"):
        client.list_campaign("CUOGHIN")


def test_list_fixture_single_page(client, mock) -> None:
    mock.get(NUMBERS_PATH).respond(200, json=fixture("list_response.json"))
    result = client.list_campaign("CUOGHIN")
    assert [(s.number, s.signal) for s in result] == [
        ("+12025551111", Signal.LINKED),
        ("+12025552222", Signal.PENDING),
        ("+12025553333", Signal.FAILED),
    ]


def test_list_stops_when_offset_is_ignored(client, mock) -> None:
    full = {
        "phone_numbers": [{"number": f"1202555{i:04d}", "status": "COMPLETED"} for i in range(20)]
    }
    route = mock.get(NUMBERS_PATH).respond(200, json=full)
    assert len(client.list_campaign("CUOGHIN")) == 20
    assert route.call_count == 2


def test_list_404_is_permanent_not_not_linked(client, mock) -> None:
    mock.get(NUMBERS_PATH).respond(404, json={"error": "campaign not found"})
    with pytest.raises(PermanentProviderError) as err:
        client.list_campaign("CUOGHIN")
    assert not isinstance(err.value, NotLinked)


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "timed_out"),
    [
        (httpx.ReadTimeout, True),
        (httpx.WriteTimeout, True),
        (httpx.ConnectTimeout, False),
        (httpx.PoolTimeout, False),
        (httpx.ConnectError, False),
        (httpx.RemoteProtocolError, True),
    ],
)
def test_transport_errors_on_post_are_temporary(client, mock, exc, timed_out) -> None:
    mock.post(NUMBERS_PATH).mock(side_effect=exc)
    with pytest.raises(TemporaryProviderError) as err:
        client.link("CUOGHIN", ["+12025551111"])
    assert err.value.timed_out is timed_out
    assert not isinstance(err.value, MalformedResponse)


def test_read_timeout_on_get_is_not_timed_out(client, mock) -> None:
    mock.get(ONE_PATH).mock(side_effect=httpx.ReadTimeout)
    with pytest.raises(TemporaryProviderError) as err:
        client.get("CUOGHIN", "+12025551111")
    assert err.value.timed_out is False


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_temporary_statuses(client, mock, status) -> None:
    mock.post(NUMBERS_PATH).respond(status, text="<html>oops</html>")
    with pytest.raises(TemporaryProviderError) as err:
        client.link("CUOGHIN", ["+12025551111"])
    assert err.value.status == status
    assert err.value.retry_after is None


def test_429_retry_after_seconds_penalizes_limiter(client, mock, limiter) -> None:
    mock.post(NUMBERS_PATH).respond(
        429, json=fixture("rate_limited.json"), headers={"Retry-After": "7"}
    )
    with pytest.raises(TemporaryProviderError) as err:
        client.link("CUOGHIN", ["+12025551111"])
    assert err.value.retry_after == 7.0
    assert "too many requests" in str(err.value)
    assert limiter.penalties == [7.0]


def test_429_retry_after_http_date(client, mock, limiter) -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    mock.post(NUMBERS_PATH).respond(
        429, headers={"Retry-After": format_datetime(when, usegmt=True)}
    )
    with pytest.raises(TemporaryProviderError) as err:
        client.link("CUOGHIN", ["+12025551111"])
    assert err.value.retry_after is not None
    assert 100 <= err.value.retry_after <= 121
    assert len(limiter.penalties) == 1


def test_429_without_hint_still_penalizes(client, mock, limiter) -> None:
    mock.post(NUMBERS_PATH).respond(429)
    with pytest.raises(TemporaryProviderError) as err:
        client.link("CUOGHIN", ["+12025551111"])
    assert err.value.retry_after is None
    assert limiter.penalties == [1.0]


def test_503_retry_after_ms(client, mock, limiter) -> None:
    mock.get(ONE_PATH).respond(503, headers={"retry-after-ms": "1500"})
    with pytest.raises(TemporaryProviderError) as err:
        client.get("CUOGHIN", "+12025551111")
    assert err.value.retry_after == 1.5
    assert limiter.penalties == [1.5]


def test_400_is_permanent_with_provider_text(client, mock) -> None:
    mock.post(NUMBERS_PATH).respond(400, json=fixture("link_error_already_requested.json"))
    with pytest.raises(PermanentProviderError) as err:
        client.link("CUOGHIN", ["+12025551111"])
    assert type(err.value) is PermanentProviderError
    assert "already requested for linking" in err.value.message
    assert err.value.status == 400


def test_400_on_unlink_invalid_number(client, mock) -> None:
    mock.delete(ONE_PATH).respond(400, json=fixture("unlink_error_invalid.json"))
    with pytest.raises(PermanentProviderError) as err:
        client.unlink("CUOGHIN", "+12025551111")
    assert "not a valid number" in str(err.value)
    assert not isinstance(err.value, NotLinked)


@pytest.mark.parametrize("status", [401, 403])
def test_credentials_rejected(client, mock, status) -> None:
    mock.get(ONE_PATH).respond(status, json={"error": "Authentication failed"})
    with pytest.raises(CredentialsRejected) as err:
        client.get("CUOGHIN", "+12025551111")
    assert err.value.status == status


def test_401_with_not_linked_text_is_still_credentials(client, mock) -> None:
    mock.get(ONE_PATH).respond(401, json={"error": "number not linked"})
    with pytest.raises(CredentialsRejected):
        client.get("CUOGHIN", "+12025551111")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"phone_numbers": "nope"}',
        b'{"phone_numbers": [1]}',
        b'{"phone_numbers": [{"number": "12025551111"}]}',
        b'{"phone_numbers": [{"number": "garbage", "status": "COMPLETED"}]}',
        b'{"phone_numbers": [{"number": null, "status": "COMPLETED"}]}',
        b'{"phone_numbers": [{"number": "12025551111", "status": 5}]}',
        b'{"campaign_id": 5, "phone_numbers": []}',
        b"",
        b"[" * 100_000,
    ],
)
def test_malformed_get(client, mock, body) -> None:
    mock.get(ONE_PATH).respond(200, content=body)
    with pytest.raises(MalformedResponse) as err:
        client.get("CUOGHIN", "+12025551111")
    assert err.value.timed_out is False


def test_malformed_link_answer_may_have_been_done(client, mock) -> None:
    mock.post(NUMBERS_PATH).respond(202, content=b"<html>")
    with pytest.raises(MalformedResponse) as err:
        client.link("CUOGHIN", ["+12025551111"])
    assert err.value.timed_out is True


def test_campaign_id_is_path_quoted(client, mock) -> None:
    route = mock.get(f"/v1/Account/{AUTH_ID}/10dlc/Campaign/A%2FB/Number/12025551111/").respond(
        200, json={"phone_numbers": [{"number": "12025551111", "status": "COMPLETED"}]}
    )
    client.get("A/B", "+12025551111")
    assert route.called
