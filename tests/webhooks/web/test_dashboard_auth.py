"""Dashboard auth: no API_TOKEN refuses everyone; a wrong token is refused; the right one
opens a signed session; login and logout need the form's CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.webhooks.web.conftest import TOKEN, make_web_app


def csrf_of(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path)
    match = re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True))
    assert match, page.get_data(as_text=True)
    return match.group(1)


def login(client: FlaskClient, token: str = TOKEN, next_path: str = "/") -> object:
    return client.post("/login", data={"csrf": csrf_of(client), "token": token, "next": next_path})


@pytest.fixture
def client(web_app: Flask) -> FlaskClient:
    return web_app.test_client()


@pytest.fixture
def tokenless(sqlite_url: str) -> Iterator[FlaskClient]:
    app = make_web_app(sqlite_url, api_token=None)
    yield app.test_client()
    app.extensions["dlcsync"].engine.dispose()


@pytest.mark.parametrize("path", ["/", "/login", "/number?number=%2B12025550100"])
def test_without_api_token_everyone_is_refused_with_a_clear_message(
    tokenless: FlaskClient, path: str
) -> None:
    r = tokenless.get(path)
    assert r.status_code == 403
    assert "API_TOKEN is not set" in r.get_data(as_text=True)
    r = tokenless.post("/login", data={"token": "", "csrf": ""})
    assert r.status_code == 403
    assert "Set-Cookie" not in r.headers


def test_not_logged_in_redirects_to_login_keeping_where_to_go(client: FlaskClient) -> None:
    r = client.get("/number?number=%2B12025550100")
    assert r.status_code == 302
    assert r.headers["Location"].startswith("/login?next=")
    assert "number" in r.headers["Location"]


def test_wrong_token_is_refused(client: FlaskClient) -> None:
    r = login(client, token="not-the-token")
    assert r.status_code == 401
    assert "Wrong token" in r.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_empty_token_is_refused(client: FlaskClient) -> None:
    assert login(client, token="").status_code == 401
    assert client.get("/").status_code == 302


def test_right_token_logs_in_and_logout_logs_out(client: FlaskClient) -> None:
    r = login(client)
    assert r.status_code == 302 and r.headers["Location"] == "/"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert TOKEN not in cookie
    page = client.get("/")
    assert page.status_code == 200
    assert "Needs attention" in page.get_data(as_text=True)

    assert client.post("/logout", data={}).status_code == 400  # no CSRF token: refused
    assert client.get("/").status_code == 200
    r = client.post("/logout", data={"csrf": csrf_of(client, "/")})
    assert r.status_code == 302
    assert client.get("/").status_code == 302


def test_login_without_csrf_token_is_refused(client: FlaskClient) -> None:
    r = client.post("/login", data={"token": TOKEN})
    assert r.status_code == 400
    assert client.get("/").status_code == 302


def test_login_never_redirects_to_another_site(client: FlaskClient) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        r = login(client, next_path=target)
        assert r.status_code == 302
        assert r.headers["Location"] == "/"


def test_changing_the_api_token_ends_existing_sessions(sqlite_url: str) -> None:
    first = make_web_app(sqlite_url)
    second = make_web_app(sqlite_url, api_token="rotated-token-0123456789abcdefghijkl")
    try:
        c1 = first.test_client()
        assert login(c1).status_code == 302
        cookie = c1.get_cookie("dlcsync_session")
        assert cookie is not None
        c2 = second.test_client()
        c2.set_cookie("dlcsync_session", cookie.value)
        assert c2.get("/").status_code == 302
    finally:
        first.extensions["dlcsync"].engine.dispose()
        second.extensions["dlcsync"].engine.dispose()


def test_dashboard_sends_no_store_and_framing_headers(client: FlaskClient) -> None:
    login(client)
    r = client.get("/")
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
