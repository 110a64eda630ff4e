"""Provider answers are hostile input: a size cap on the body, an overall deadline per
request, a cap on records per page, and endpoint names that never carry a campaign id."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator

import httpx
import pytest

from providers.base import MalformedResponse, TemporaryProviderError
from providers.http import (
    MAX_RECORDS_PER_PAGE,
    MAX_RESPONSE_BYTES,
    check_page_size,
    endpoint_name,
    make_http_client,
    perform,
)

BASE = "https://provider.test"


class NoLimit:
    def acquire(self) -> None:
        pass

    def penalize(self, seconds: float) -> None:
        pass


def client(handler: httpx.MockTransport) -> httpx.Client:
    return make_http_client(BASE, transport=handler)


def answer(response: httpx.Response) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: response)


def chunks(size: int, count: int) -> Iterator[bytes]:
    for _ in range(count):
        yield b"x" * size


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_body_past_the_cap_is_not_read_and_is_malformed(method: str) -> None:
    # Streamed without Content-Length: the cap must be enforced while reading.
    over = answer(httpx.Response(200, content=chunks(1 << 20, MAX_RESPONSE_BYTES // (1 << 20) + 2)))
    with pytest.raises(MalformedResponse) as info:
        perform(client(over), NoLimit(), method, "/v2/x", provider="telnyx")
    assert "too large" in str(info.value)
    # After a POST the request may have been carried out: check before sending it again.
    assert info.value.timed_out is (method == "POST")


def test_a_declared_length_past_the_cap_is_refused_before_reading() -> None:
    read: list[int] = []

    def body() -> Iterator[bytes]:
        read.append(1)
        yield b"{}"

    headers = {"content-length": str(MAX_RESPONSE_BYTES + 1)}
    big = answer(httpx.Response(200, headers=headers, content=body()))
    with pytest.raises(MalformedResponse):
        perform(client(big), NoLimit(), "GET", "/v2/x", provider="telnyx")
    assert read == []


def test_a_compressed_bomb_is_stopped_at_the_decoded_size() -> None:
    bomb = gzip.compress(b"0" * (MAX_RESPONSE_BYTES + 1024))
    assert len(bomb) < MAX_RESPONSE_BYTES // 100
    gz = answer(httpx.Response(200, headers={"content-encoding": "gzip"}, content=bomb))
    with pytest.raises(MalformedResponse):
        perform(client(gz), NoLimit(), "GET", "/v2/x", provider="telnyx")


def test_a_body_within_the_cap_is_read_decoded_and_usable() -> None:
    payload = b'{"records": [1, 2, 3]}'
    ok = answer(
        httpx.Response(
            200,
            headers={"content-encoding": "gzip", "retry-after": "3"},
            content=gzip.compress(payload),
        )
    )
    response = perform(client(ok), NoLimit(), "GET", "/v2/x", provider="telnyx")
    assert response.content == payload
    assert response.json() == {"records": [1, 2, 3]}
    assert response.headers["retry-after"] == "3"
    assert response.request.url == f"{BASE}/v2/x"


def test_a_server_that_drips_its_body_is_cut_off_at_the_deadline() -> None:
    """Each chunk arrives well inside any per-read timeout; the whole takes too long.
    (Real time: the deadline uses the monotonic clock, which time-machine does not move.)"""

    def drip() -> Iterator[bytes]:
        for _ in range(40):
            time.sleep(0.05)
            yield b" "

    slow = httpx.MockTransport(lambda request: httpx.Response(200, content=drip()))
    started = time.monotonic()
    with pytest.raises(TemporaryProviderError) as info:
        perform(client(slow), NoLimit(), "POST", "/v2/x", provider="plivo", deadline=0.3)
    assert time.monotonic() - started < 1.5
    assert "0.3s" in str(info.value)
    assert info.value.timed_out is True  # a POST: check with a GET before resending


def test_every_phase_timeout_is_capped_by_the_deadline() -> None:
    seen: list[dict[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200, json={})

    perform(client(httpx.MockTransport(handler)), NoLimit(), "GET", "/x", provider="p",
            deadline=2.0)  # fmt: skip
    assert seen and all(0 < v <= 2.0 for v in seen[0].values())


def test_a_page_holding_more_records_than_asked_is_malformed() -> None:
    response = httpx.Response(200, request=httpx.Request("GET", f"{BASE}/v2/list"))
    assert check_page_size(response, "telnyx", [1, 2], asked=2) == [1, 2]
    with pytest.raises(MalformedResponse):
        check_page_size(response, "telnyx", [1, 2, 3], asked=2)
    with pytest.raises(MalformedResponse):
        check_page_size(response, "plivo", list(range(MAX_RECORDS_PER_PAGE + 1)), asked=10**6)


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("/v1/Account/MAXXXXXXXXXXXXXXXXXX/10dlc/Campaign/acme/Number/",
         "/v1/Account/{id}/10dlc/Campaign/{id}/Number/"),
        ("/v1/Account/MA1/10dlc/Campaign/Spring/Number/12025550100/",
         "/v1/Account/{id}/10dlc/Campaign/{id}/Number/{id}/"),
        ("/v2/10dlc/campaign/promotions", "/v2/10dlc/campaign/{id}"),
        ("/v2/10dlc/partner_campaigns/loyalty_club", "/v2/10dlc/partner_campaigns/{id}"),
        ("https://api.telnyx.com/v2/10dlc/phone_number_campaigns/%2B12025550100?x=1",
         "/v2/10dlc/phone_number_campaigns/{id}"),
    ],
)  # fmt: skip
def test_endpoint_names_never_carry_a_campaign_id_that_looks_like_a_word(
    url: str, name: str
) -> None:
    assert endpoint_name("get", url) == f"GET {name}"
