"""What the blueprints share: the per-app services and the error answer.

Blueprints read their services from ``current_app.extensions`` through :func:`services`, so
no blueprint imports the composition root (``webhooks.app``) that registers it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import current_app, jsonify

from common.settings import Settings
from providers.base import CallbackHandler
from providers.registry import Specs
from webhooks.publisher import BatchPublisher

#: DESIGN §4: bodies over 256 KiB get 413.
MAX_BODY_BYTES = 256 * 1024


@dataclass
class Services:
    settings: Settings
    engine: sa.Engine
    #: The providers this app serves (``providers.registry.SPECS`` but in tests).
    specs: Specs
    #: One per spec: verifies and parses the provider's callbacks.
    handlers: dict[str, CallbackHandler]
    #: Publish a task by name; raises when the broker is unreachable.
    enqueue: Callable[..., None]
    #: Raises when the broker is unreachable (for /readyz).
    broker_ping: Callable[[], None]
    #: Hands committed inbox ids to the worker, batched, off the request path.
    publisher: BatchPublisher


def services() -> Services:
    svc: Services = current_app.extensions["dlcsync"]
    return svc


def error(status: int, code: str, message: str) -> tuple[Any, int]:
    return jsonify({"error": {"code": code, "message": message}}), status
