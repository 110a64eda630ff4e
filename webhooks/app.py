"""The Flask composition root: ``create_app(settings)`` (gunicorn: ``webhooks.wsgi:app``)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import structlog
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from common.logs import bind_request_id, request_id_from
from common.settings import Settings
from models.db import make_engine
from webhooks.auth import check_api_token
from webhooks.publisher import BatchPublisher
from webhooks.services import MAX_BODY_BYTES, Services, error, refuse_long_unsized_body

#: Taken from the caller (when sane) or generated; bound to every log line; echoed back.
REQUEST_ID_HEADER = "X-Request-ID"

log = structlog.get_logger(__name__)


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    settings = settings or Settings()
    check_api_token(settings.api_token)  # raises ConfigurationError: the process stops
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES

    from providers.registry import SPECS, build_callback_handlers

    enqueue: Callable[..., None] | None = overrides.pop("enqueue", None)
    broker_ping: Callable[[], None] | None = overrides.pop("broker_ping", None)
    if enqueue is None or broker_ping is None:
        from worker import celery_app

        celery = celery_app.create_celery(settings)
        enqueue = enqueue or partial(celery_app.enqueue, celery)
        broker_ping = broker_ping or partial(celery_app.ping, celery)

    specs = overrides.pop("specs", SPECS)
    app.extensions["dlcsync"] = Services(
        settings=settings,
        # No pre-ping per checkout: a dead connection fails the request with a 503 (the
        # provider retries) and the pool replaces it; the ping cost a round trip per webhook.
        engine=overrides.pop("engine", None)
        or make_engine(settings.database_url, pool_pre_ping=False),
        specs=specs,
        handlers=overrides.pop("handlers", None) or build_callback_handlers(settings, specs),
        enqueue=enqueue,
        broker_ping=broker_ping,
        publisher=BatchPublisher(enqueue),
    )

    from webhooks.dashboard import bp as dashboard_bp
    from webhooks.health import bp as health_bp
    from webhooks.intake import bp as intake_bp
    from webhooks.metrics_view import bp as metrics_bp
    from webhooks.openapi import bp as api_bp

    app.register_blueprint(intake_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(metrics_bp)
    app.register_blueprint(dashboard_bp)

    @app.before_request
    def _bind_request_id() -> None:
        g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        bind_request_id(g.request_id)

    app.before_request(refuse_long_unsized_body)

    @app.after_request
    def _return_request_id(response: Response) -> Response:
        if "request_id" in g:
            response.headers[REQUEST_ID_HEADER] = g.request_id
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Any, int]:
        status = exc.code or 400
        body, status = error(
            status, (exc.name or "error").lower().replace(" ", "_"), exc.description or ""
        )
        # Keep the headers that belong to the answer (Allow on 405, Retry-After, ...).
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                body.headers[name] = value
        return body, status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Any, int]:
        # Never a 500: whatever went wrong, the delivery was not stored, so ask for a retry.
        log.exception("unexpected error", error=str(exc))
        return error(503, "unavailable", "temporarily unable to handle the request; retry")

    return app
