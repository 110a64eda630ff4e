"""Fixtures for the ``/api/v1`` tests: the Flask app on a migrated database, both providers on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from common.settings import Settings
from webhooks.app import create_app

TOKEN = "test-api-token-0123456789abcdefghij"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def make_app(database_url: str, **settings: Any) -> Flask:
    values: dict[str, Any] = {
        "database_url": database_url,
        "api_token": TOKEN,
        "plivo_auth_id": "MAXXXXXXXXXXXXXXXXXX",
        "plivo_auth_token": "plivo-token",
        "telnyx_api_key": "KEY-telnyx",
        **settings,
    }
    return create_app(Settings(**values), enqueue=lambda *a: None, broker_ping=lambda: None)


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    app = make_app(db_url)
    yield app
    app.extensions["dlcsync"].engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def app_engine(app: Flask) -> sa.Engine:
    """The engine the app uses, for arranging data with the model functions."""
    engine: sa.Engine = app.extensions["dlcsync"].engine
    return engine


@pytest.fixture
def auth() -> dict[str, str]:
    return dict(AUTH)


@pytest.fixture
def app_factory() -> Iterator[Callable[..., Flask]]:
    """``make_app`` for tests that need other settings; engines disposed afterwards."""
    made: list[Flask] = []

    def factory(database_url: str, **settings: Any) -> Flask:
        made.append(make_app(database_url, **settings))
        return made[-1]

    yield factory
    for app in made:
        app.extensions["dlcsync"].engine.dispose()
