"""The dashboard's ``next`` parameter ends up in a Location header: CR/LF (header injection)
or other control characters get a clear 400, never a 503."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.webhooks.web.conftest import TOKEN
from tests.webhooks.web.test_dashboard_auth import csrf_of

HOSTILE = ["/\r\nSet-Cookie: x=1", "/\nLocation: https://evil.example", "/a\x00b", "/\x7f"]


@pytest.mark.parametrize("target", HOSTILE)
def test_control_characters_in_next_are_400(web_app: Flask, target: str) -> None:
    client = web_app.test_client()
    r = client.post("/login", data={"csrf": csrf_of(client), "token": TOKEN, "next": target})
    assert r.status_code == 400, r.status_code
    assert "Set-Cookie: x" not in str(r.headers) and "evil" not in r.headers.get("Location", "")
    assert client.get("/login", query_string={"next": target}).status_code == 400


def test_a_plain_local_next_still_redirects_there(web_app: Flask) -> None:
    client = web_app.test_client()
    r = client.post("/login", data={"csrf": csrf_of(client), "token": TOKEN, "next": "/number"})
    assert r.status_code == 302 and r.headers["Location"] == "/number"
