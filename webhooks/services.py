"""What the blueprints share: the per-app services and the error answer.

Blueprints read their services from ``current_app.extensions`` through :func:`services`, so
no blueprint imports the composition root (``webhooks.app``) that registers it.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

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
    #: Publishes a task by name (``POST /api/v1/adopt``); raises when the broker is down.
    enqueue: Callable[..., None]
    #: Raises when the broker is unreachable (for /readyz).
    broker_ping: Callable[[], None]
    #: Hands committed inbox ids to the worker, batched, off the request path.
    publisher: BatchPublisher


def services() -> Services:
    svc: Services = current_app.extensions["dlcsync"]
    return svc


def refuse_long_unsized_body() -> None:
    """413 for a body without Content-Length (chunked) longer than :data:`MAX_BODY_BYTES`.

    Werkzeug cuts such a body at ``MAX_CONTENT_LENGTH`` without a word, so a view would see a
    truncated request. Read it here, at most one byte past the limit, and hand the views the
    whole of it with its length.
    """
    environ = request.environ
    if request.content_length is not None:
        return
    chunked = environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
    if not (chunked or environ.get("wsgi.input_terminated")):
        return  # no body (reading one would wait for bytes that never come)
    stream, parts, size = environ["wsgi.input"], [], 0
    while size <= MAX_BODY_BYTES:
        part = stream.read(min(64 * 1024, MAX_BODY_BYTES + 1 - size))
        if not part:
            break
        parts.append(part)
        size += len(part)
    if size > MAX_BODY_BYTES:
        raise RequestEntityTooLarge()
    environ["wsgi.input"] = io.BytesIO(b"".join(parts))
    environ["CONTENT_LENGTH"] = str(size)


def error(status: int, code: str, message: str) -> tuple[Any, int]:
    return jsonify({"error": {"code": code, "message": message}}), status
