"""``/healthz`` and ``/readyz``: readiness names what is unreachable, never why (the page is
public; the reason goes to the log)."""

from __future__ import annotations

import pytest

from common.settings import Settings
from webhooks.app import create_app

#: An unreachable PostgreSQL whose URL carries a password and an internal address.
DEAD_DATABASE = "postgresql+psycopg://dlc:db-secret-pw@127.0.0.1:1/dlcsync"
BROKER_ERROR = "Error 111 connecting to redis-internal.example:6379 as broker-secret-pw"


def _broker_down() -> None:
    raise ConnectionRefusedError(BROKER_ERROR)


@pytest.mark.parametrize(
    ("database_url", "broker_up", "unreachable"),
    [
        (DEAD_DATABASE, True, ["database"]),
        (None, False, ["broker"]),
        (DEAD_DATABASE, False, ["broker", "database"]),
        (None, True, []),
    ],
)
def test_readyz_names_what_is_unreachable_without_internal_error_text(
    sqlite_url: str, database_url: str | None, broker_up: bool, unreachable: list[str]
) -> None:
    app = create_app(
        Settings(database_url=database_url or sqlite_url),
        enqueue=lambda *a: None,
        broker_ping=(lambda: None) if broker_up else _broker_down,
    )
    try:
        r = app.test_client().get("/readyz")
    finally:
        app.extensions["dlcsync"].engine.dispose()
    body = r.get_json()
    assert r.status_code == (503 if unreachable else 200)
    assert body.get("unreachable", []) == unreachable
    assert body["checks"] == {
        name: "unreachable" if name in unreachable else "ok" for name in ("database", "broker")
    }
    text = r.get_data(as_text=True)
    for leak in ("secret-pw", "127.0.0.1", "redis-internal", "Error 111", "psycopg"):
        assert leak not in text
