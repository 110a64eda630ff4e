"""Dashboard sessions live on the server: logout ends them for good, failed logins are
throttled per client address across web workers, and the cookie is Secure behind https."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
import time_machine
from flask import Flask
from flask.testing import FlaskClient

from models import logins
from models.tables import utcnow
from tests.webhooks.web.conftest import TOKEN, app_engine, make_web_app
from tests.webhooks.web.test_dashboard_auth import csrf_of, login
from webhooks.dashboard import client_key


def client_at(app: Flask, address: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


@pytest.fixture
def two_workers(db_url: str) -> Iterator[tuple[Flask, Flask]]:
    """Two apps on one database, as two gunicorn workers are."""
    apps = (make_web_app(db_url), make_web_app(db_url))
    yield apps
    for app in apps:
        app.extensions["dlcsync"].engine.dispose()


def test_logout_ends_the_session_on_the_server_so_a_kept_cookie_is_worthless(
    two_workers: tuple[Flask, Flask],
) -> None:
    first, second = two_workers
    client = first.test_client()
    assert login(client).status_code == 302
    cookie = client.get_cookie("dlcsync_session")
    assert cookie is not None
    # The same cookie works on the other worker while the session is open...
    other = second.test_client()
    other.set_cookie("dlcsync_session", cookie.value)
    assert other.get("/").status_code == 200
    # ...and nowhere once it is logged out, even replayed as it was before the logout.
    assert client.post("/logout", data={"csrf": csrf_of(client, "/")}).status_code == 302
    replay = second.test_client()
    replay.set_cookie("dlcsync_session", cookie.value)
    assert replay.get("/").status_code == 302
    assert other.get("/").status_code == 302


def test_the_session_table_holds_no_usable_token(web_app: Flask) -> None:
    client = web_app.test_client()
    login(client)
    with app_engine(web_app).connect() as conn:
        rows = conn.execute(sa.text("SELECT id, token_fingerprint FROM dashboard_sessions")).all()
    assert len(rows) == 1
    cookie = client.get_cookie("dlcsync_session")
    assert cookie is not None
    assert TOKEN not in rows[0].token_fingerprint
    assert rows[0].id not in cookie.value  # only a digest of the cookie's token is stored


def test_sessions_expire_on_the_server(web_app: Flask) -> None:
    client = web_app.test_client()
    with time_machine.travel(utcnow(), tick=False) as clock:
        login(client)
        assert client.get("/").status_code == 200
        clock.shift(timedelta(hours=12, seconds=1))
        assert client.get("/").status_code == 302


def test_failed_logins_are_throttled_per_address_across_workers(
    two_workers: tuple[Flask, Flask],
) -> None:
    first, second = two_workers
    attacker_1 = client_at(first, "203.0.113.9")
    attacker_2 = client_at(second, "203.0.113.9")
    with time_machine.travel(utcnow(), tick=False) as clock:
        for i in range(logins.MAX_FAILURES):
            client = attacker_1 if i % 2 else attacker_2
            assert login(client, token=f"guess-{i}").status_code == 401
        # Now even the right token is refused from that address, on either worker.
        for client in (attacker_1, attacker_2):
            r = login(client)
            assert r.status_code == 429
            assert "Too many failed logins" in r.get_data(as_text=True)
            assert int(r.headers["Retry-After"]) > 0
            assert client.get("/").status_code == 302
        # Another address is not affected.
        assert login(client_at(second, "198.51.100.7")).status_code == 302
        # Throttled attempts are not stored: the table stays bounded.
        with app_engine(first).connect() as conn:
            stored = conn.execute(
                sa.text("SELECT count(*) FROM login_failures WHERE client = '203.0.113.9'")
            ).scalar_one()
        assert stored == logins.MAX_FAILURES
        # After the window, the address may try again; old failures are deleted.
        clock.shift(logins.FAILURE_WINDOW + timedelta(seconds=1))
        assert login(attacker_1, token="late-guess").status_code == 401
        with app_engine(first).connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM login_failures")).scalar_one() == 1
        assert login(attacker_2).status_code == 302


def test_ipv6_clients_are_counted_by_their_64() -> None:
    assert client_key("2001:db8:1:2::5") == client_key("2001:db8:1:2:ffff::1")
    assert client_key("2001:db8:1:3::5") != client_key("2001:db8:1:2::5")
    assert client_key("192.0.2.1") == "192.0.2.1"
    assert client_key(None) == client_key("not an address") == "unknown"


@pytest.mark.parametrize(("public_url", "secure"), [("https://dlc.example.com", True),
                                                     ("http://127.0.0.1:8000", False)])  # fmt: skip
def test_the_cookie_is_secure_when_public_url_is_https(
    sqlite_url: str, public_url: str, secure: bool
) -> None:
    app = make_web_app(sqlite_url, public_url=public_url)
    try:
        client = app.test_client()
        r = login(client)
        assert r.status_code == 302  # type: ignore[attr-defined]
        cookie = r.headers["Set-Cookie"]  # type: ignore[attr-defined]
        assert ("; Secure" in cookie) is secure
    finally:
        app.extensions["dlcsync"].engine.dispose()
