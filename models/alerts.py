"""The alert outbox: rows written in the transaction of the change that causes them.

A dedupe key makes one (link, generation, kind) alert at most once, whoever raises it and
however often. Delivery is a separate task that reads pending rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from models.db import insert_ignoring_conflicts
from models.statemachine import AlertKind
from models.tables import Alert, Link, utcnow


def dedupe_key(kind: AlertKind, link: Link | None, extra: str | None = None) -> str:
    parts = [kind.value]
    if link is not None:
        parts += [str(link.id), str(link.generation)]
    if extra:
        parts.append(extra)
    return ":".join(parts)[:255]


def raise_alert(
    session: Session,
    kind: AlertKind,
    *,
    link: Link | None = None,
    reason: str | None = None,
    key_extra: str | None = None,
    payload: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> bool:
    """Add an alert to the outbox unless its dedupe key exists. True if it was added."""
    now = now or utcnow()
    body: dict[str, Any] = {"kind": kind.value, "reason": reason}
    if link is not None:
        body |= {
            "provider": link.provider,
            "number": link.number,
            "campaign_id": link.campaign_id,
            "generation": link.generation,
            "state": link.state,
        }
    body |= payload or {}
    values = {
        "kind": kind.value,
        "dedupe_key": dedupe_key(kind, link, key_extra),
        "link_id": link.id if link is not None else None,
        "provider": link.provider if link is not None else body.get("provider"),
        "number": link.number if link is not None else body.get("number"),
        "campaign_id": link.campaign_id if link is not None else body.get("campaign_id"),
        "generation": link.generation if link is not None else None,
        "payload": body,
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    return insert_ignoring_conflicts(session, Alert, values)
