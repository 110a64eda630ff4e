"""``/healthz`` (the process is up) and ``/readyz`` (database and broker reachable)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint

from webhooks.services import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Any, int]:
    return {"status": "ok"}, 200


@bp.get("/readyz")
def readyz() -> tuple[Any, int]:
    svc = services()
    checks: dict[str, str] = {}
    try:
        with svc.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {str(exc).splitlines()[0][:200]}"
    try:
        svc.broker_ping()
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = (
            f"unreachable: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}"
        )
    ready = all(v == "ok" for v in checks.values())
    return {"status": "ready" if ready else "unavailable", "checks": checks}, 200 if ready else 503
