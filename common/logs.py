"""Structured JSON logs (structlog) for every process.

Context (provider, number, campaign, generation, task and request ids) is bound with
``structlog.contextvars.bind_contextvars``: the web binds a request id per request
(:func:`request_id_from`, used by ``create_app``), the worker binds the Celery task id and name
per task (:func:`bind_celery_task_ids`).

Secrets never reach a log line: settings hold them as ``SecretStr``, nothing logs request
headers or settings wholesale, and as a last line of defence :func:`redact_secrets` replaces
the value of any key that looks like a credential (token, secret, password, authorization,
signature, api key), any ``SecretStr`` and any ``Bearer ...`` text before rendering.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import MutableMapping
from typing import Any

import structlog
from pydantic import SecretBytes, SecretStr

REDACTED = "[REDACTED]"
#: Keys whose values are credentials, wherever they appear (nested too).
SECRET_KEY_PATTERN = re.compile(
    r"token|secret|password|passwd|authorization|signature|api[_-]?key|cookie", re.IGNORECASE
)
_BEARER = re.compile(r"(Bearer|Basic)\s+[^\s,;\"']+", re.IGNORECASE)
#: What a caller may send as X-Request-ID and have echoed back (anything else is replaced).
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
_MAX_DEPTH = 8


def _redact(value: Any, depth: int = 0) -> Any:
    if isinstance(value, SecretStr | SecretBytes):
        return REDACTED
    if depth >= _MAX_DEPTH:
        return value
    if isinstance(value, dict):
        return {
            k: REDACTED
            if isinstance(k, str) and SECRET_KEY_PATTERN.search(k)
            else _redact(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_redact(v, depth + 1) for v in value)
    if isinstance(value, str):
        return _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", value)
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: hide credential values (by key name, by type, Bearer text)."""
    for key in list(event_dict):
        value = event_dict[key]
        if SECRET_KEY_PATTERN.search(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact(value)
    return event_dict


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=level)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def request_id_from(header: str | None) -> str:
    """The caller's ``X-Request-ID`` when it is a sane token, else a fresh one."""
    if header and _REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def bind_request_id(request_id: str) -> None:
    """Start a request's log context: earlier requests' keys never leak into this one."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)


def bind_celery_task_ids(app: Any) -> None:
    """Bind ``task_id`` and ``task`` (the task name) to every log line of a Celery task.

    Call once from the worker's composition root with the Celery app. Context is cleared
    before and after each task so one task's keys never appear in the next one's lines.
    """
    from celery.signals import task_postrun, task_prerun

    def _prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
        if task is not None and getattr(task, "app", app) is not app:
            return
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(task_id=task_id, task=getattr(task, "name", None))

    def _postrun(task: Any = None, **_: Any) -> None:
        if task is not None and getattr(task, "app", app) is not app:
            return
        structlog.contextvars.clear_contextvars()

    uid = f"dlcsync-log-ids-{id(app)}"
    task_prerun.connect(_prerun, weak=False, dispatch_uid=f"{uid}-pre")
    task_postrun.connect(_postrun, weak=False, dispatch_uid=f"{uid}-post")
