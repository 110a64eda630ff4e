"""Secrets never reach a log line; request and task ids are bound to every line."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog
from celery import Celery
from flask import Flask

from common.logs import REDACTED, bind_celery_task_ids, configure_logging, redact_secrets
from common.settings import Settings


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The real configuration, printing into a buffer."""
    out = io.StringIO()
    configure_logging("DEBUG")
    config = structlog.get_config()
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    yield out
    structlog.configure(**config)
    structlog.contextvars.clear_contextvars()


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def test_values_of_secret_keys_secretstr_and_bearer_text_are_redacted(
    json_lines: io.StringIO,
) -> None:
    settings = Settings(api_token="tok-123-secret", plivo_auth_token="plivo-secret-456")
    log = structlog.get_logger("t")
    log.info(
        "calling provider",
        provider="telnyx",
        number="+12025550100",
        api_token="tok-123-secret",
        Authorization="Bearer abc.def.ghi",
        telnyx_signature_ed25519="c2lnbmF0dXJl",
        password="hunter2",
        client_secret="s3cr3t",
        telnyx_api_key="KEY-live-789",
        plivo=settings.plivo_auth_token,
        headers={"authorization": "Basic dXNlcjpwYXNz", "content-type": "application/json"},
        nested=[{"webhook_secret": "whsec-000"}],
        error="upstream said: Authorization: Bearer leaked-token-xyz",
    )
    text = json_lines.getvalue()
    for secret in (
        "tok-123-secret",
        "abc.def.ghi",
        "c2lnbmF0dXJl",
        "hunter2",
        "s3cr3t",
        "KEY-live-789",
        "plivo-secret-456",
        "dXNlcjpwYXNz",
        "whsec-000",
        "leaked-token-xyz",
    ):
        assert secret not in text, secret
    (line,) = lines(json_lines)
    assert line["provider"] == "telnyx" and line["number"] == "+12025550100"
    assert line["api_token"] == REDACTED
    assert line["plivo"] == REDACTED
    assert line["headers"] == {"authorization": REDACTED, "content-type": "application/json"}
    assert line["nested"] == [{"webhook_secret": REDACTED}]
    assert line["error"] == "upstream said: Authorization: Bearer [REDACTED]"


def test_context_variables_are_redacted_too(json_lines: io.StringIO) -> None:
    structlog.contextvars.bind_contextvars(request_id="r-1", session_token="ctx-secret")
    structlog.get_logger("t").info("hello")
    (line,) = lines(json_lines)
    assert line["request_id"] == "r-1"
    assert line["session_token"] == REDACTED
    assert "ctx-secret" not in json_lines.getvalue()


def test_processor_leaves_ordinary_values_alone() -> None:
    event = {"event": "x", "dedupe_key": "evt-1", "generation": 3, "campaign_id": "C1"}
    assert redact_secrets(None, "info", dict(event)) == event


def test_request_id_is_taken_or_generated_returned_and_bound(
    web_app: Flask, json_lines: io.StringIO
) -> None:
    seen: list[dict[str, object]] = []

    @web_app.get("/_test/context")
    def _context() -> dict[str, object]:
        seen.append(structlog.contextvars.get_contextvars())
        structlog.get_logger("t").info("inside")
        return {}

    client = web_app.test_client()
    r = client.get("/_test/context", headers={"X-Request-ID": "abc-123"})
    assert r.headers["X-Request-ID"] == "abc-123"
    assert seen[-1]["request_id"] == "abc-123"
    assert lines(json_lines)[-1]["request_id"] == "abc-123"

    r = client.get("/_test/context")
    generated = r.headers["X-Request-ID"]
    assert len(generated) == 32 and generated != "abc-123"
    assert seen[-1] == {"request_id": generated}  # nothing left over from the last request

    r = client.get("/_test/context", headers={"X-Request-ID": "bad id\twith spaces"})
    assert r.headers["X-Request-ID"] != "bad id\twith spaces"
    assert len(r.headers["X-Request-ID"]) == 32

    # Every answer carries it, errors and other blueprints included.
    assert "X-Request-ID" in client.post("/webhooks/telnyx", data=b"{}").headers
    assert client.get("/healthz").headers["X-Request-ID"]


def test_celery_task_id_and_name_are_bound_during_a_task() -> None:
    app = Celery("t", set_as_current=False)
    bind_celery_task_ids(app)
    bind_celery_task_ids(app)  # idempotent
    seen: list[dict[str, object]] = []

    @app.task(name="dlcsync.test_context")
    def context_task() -> None:
        seen.append(structlog.contextvars.get_contextvars())

    structlog.contextvars.bind_contextvars(request_id="left-over")
    result = context_task.apply(task_id="task-42")
    assert result.successful()
    assert seen == [{"task_id": "task-42", "task": "dlcsync.test_context"}]
    assert structlog.contextvars.get_contextvars() == {}
