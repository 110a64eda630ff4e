"""Settings the web process checks at start: API_TOKEN strength, SECRET_KEY (DESIGN §3)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.settings import Settings
from tests.webhooks.web.conftest import TOKEN, make_web_app
from webhooks.app import create_app
from webhooks.auth import MIN_API_TOKEN_LENGTH, ConfigurationError

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ("", "blank"),
        ("   ", "blank"),
        ("short-token", "too short (11 characters)"),
        ("x" * (MIN_API_TOKEN_LENGTH - 1), "too short"),
    ],
)
def test_a_set_but_weak_api_token_stops_the_web_app(sqlite_url: str, token: str, says: str) -> None:
    settings = Settings(database_url=sqlite_url, api_token=token)
    with pytest.raises(ConfigurationError) as info:
        create_app(settings, enqueue=lambda *a: None, broker_ping=lambda: None)
    message = str(info.value)
    assert says in message and "API_TOKEN" in message
    assert "\n" not in message
    if token.strip():
        assert token not in message  # the (weak) secret is not echoed


def test_unset_and_long_tokens_start(sqlite_url: str) -> None:
    for token in (None, "x" * MIN_API_TOKEN_LENGTH):
        app = make_web_app(sqlite_url, api_token=token)
        assert app.test_client().get("/healthz").status_code == 200
        app.extensions["dlcsync"].engine.dispose()


def _web_process_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("API_TOKEN", "SECRET_KEY", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(DATABASE_URL=f"sqlite:///{tmp_path}/web.db", PYTHONPATH=str(ROOT), **extra)
    return env


def test_the_gunicorn_entry_point_exits_with_one_line_not_a_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import webhooks.wsgi"],
        env=_web_process_env(tmp_path, API_TOKEN="tooshort"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 4  # gunicorn's APP_LOAD_ERROR: the arbiter does not respawn
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [lines[-1]] and "API_TOKEN is too short" in lines[-1], proc.stderr


def test_secret_key_signs_the_cookie_and_is_not_derived_from_the_api_token(
    sqlite_url: str,
) -> None:
    """Same API_TOKEN, different SECRET_KEY: one app's cookie means nothing to the other."""
    first = make_web_app(sqlite_url, secret_key="first-secret-key-0123456789abcdefgh")
    second = make_web_app(sqlite_url, secret_key="second-secret-key-0123456789abcdefg")
    try:
        assert first.config["SECRET_KEY"] == "first-secret-key-0123456789abcdefgh"
        c1 = first.test_client()
        page = c1.get("/login").get_data(as_text=True)
        csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        assert c1.post("/login", data={"csrf": csrf, "token": TOKEN}).status_code == 302
        assert c1.get("/").status_code == 200
        cookie = c1.get_cookie("dlcsync_session")
        assert cookie is not None
        c2 = second.test_client()
        c2.set_cookie("dlcsync_session", cookie.value)
        assert c2.get("/").status_code == 302  # not logged in there
    finally:
        first.extensions["dlcsync"].engine.dispose()
        second.extensions["dlcsync"].engine.dispose()


def test_without_secret_key_the_dashboard_is_closed_and_the_api_still_works(
    sqlite_url: str,
) -> None:
    app = make_web_app(sqlite_url, secret_key=None)
    try:
        client = app.test_client()
        for path in ("/", "/login"):
            r = client.get(path)
            assert r.status_code == 403
            assert "SECRET_KEY is not set" in r.get_data(as_text=True)
        r = client.post("/login", data={"token": TOKEN, "csrf": ""})
        assert r.status_code == 403 and "Set-Cookie" not in r.headers
        api = client.get("/api/v1/links", headers={"Authorization": f"Bearer {TOKEN}"})
        assert api.status_code == 200
    finally:
        app.extensions["dlcsync"].engine.dispose()


def test_dlcsync_run_generates_long_enough_secrets() -> None:
    from dlcsync.run import process_secrets

    env = process_secrets({})
    assert len(env["API_TOKEN"]) >= MIN_API_TOKEN_LENGTH
    assert len(env["SECRET_KEY"]) >= 32 and env["SECRET_KEY"] != env["API_TOKEN"]
    kept = process_secrets({"API_TOKEN": "a" * 40, "SECRET_KEY": "b" * 40})
    assert kept == {"API_TOKEN": "a" * 40, "SECRET_KEY": "b" * 40}
