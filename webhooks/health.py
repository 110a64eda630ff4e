"""``/healthz`` (the process is up) and ``/readyz`` (database and broker reachable)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import structlog
from flask import Blueprint

from webhooks.services import services

bp = Blueprint("health", __name__)
log = structlog.get_logger(__name__)


@bp.get("/healthz")
def healthz() -> tuple[Any, int]:
    return {"status": "ok"}, 200


@bp.get("/readyz")
def readyz() -> tuple[Any, int]:
    """Names what is unreachable (``database``, ``broker``) and nothing more: the page is
    public, so the reason (host names, driver messages) goes to the log, not the answer."""
    svc = services()
    checks: dict[str, str] = {}
    try:
        with svc.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        log.warning("readyz: database unreachable", error=_first_line(exc))
        checks["database"] = "unreachable"
    try:
        svc.broker_ping()
        checks["broker"] = "ok"
    except Exception as exc:
        log.warning("readyz: broker unreachable", error=_first_line(exc))
        checks["broker"] = "unreachable"
    ready = all(v == "ok" for v in checks.values())
    unreachable = sorted(name for name, v in checks.items() if v != "ok")
    body: dict[str, Any] = {"status": "ready" if ready else "unavailable", "checks": checks}
    if unreachable:
        body["unreachable"] = unreachable
    return body, 200 if ready else 503


def _first_line(exc: Exception) -> str:
    text = str(exc)
    return text.splitlines()[0][:200] if text.strip() else type(exc).__name__
