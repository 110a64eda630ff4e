"""Shared HTTP helpers: retry hints, client construction."""

from __future__ import annotations

from email.utils import formatdate

import httpx
import pytest

from providers.base import DEFAULT_TIMEOUT
from providers.http import (
    MAX_RETRY_AFTER,
    make_http_client,
    parse_retry_after,
    ratelimit_reset,
)

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Retry-After": "5"}, 5.0),
        ({"retry-after": " 2.5 "}, 2.5),
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "inf"}, None),
        ({"Retry-After": "999999"}, MAX_RETRY_AFTER),
        ({"Retry-After": "soon"}, None),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "bad", "Retry-After": "4"}, 4.0),
        ({"retry-after-ms": "1000", "Retry-After": "4"}, 1.0),
        ({"Retry-After": formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"Retry-After": formatdate(NOW - 30, usegmt=True)}, 0.0),
    ],
)
def test_parse_retry_after(headers, expected) -> None:
    assert parse_retry_after(httpx.Headers(headers), now=NOW) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("12", 12.0), (str(int(NOW) + 20), 20.0), ("x", None), ("-1", 0.0)],
)
def test_ratelimit_reset(value, expected) -> None:
    assert ratelimit_reset({"X-RateLimit-Reset": value}, now=NOW) == expected


def test_make_http_client() -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json={"ok": True}))
    client = make_http_client(
        "https://api.example.com/base", auth=("u", "p"), headers={"X-A": "b"}, transport=transport
    )
    assert client.timeout == DEFAULT_TIMEOUT
    assert client.headers["accept"] == "application/json"
    assert client.follow_redirects is False
    response = client.get("/v1/x/")
    assert str(response.request.url) == "https://api.example.com/base/v1/x/"
    assert response.request.headers["authorization"].startswith("Basic ")
    assert response.request.headers["x-a"] == "b"
    client.close()
