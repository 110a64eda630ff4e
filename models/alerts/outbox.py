"""Raising alerts into the outbox, and listing them.

A dedupe key makes one (link, generation, kind) alert at most once, whoever raises it and
however often. :func:`raise_alert` runs inside the caller's transaction, so an alert exists
exactly when the change that causes it was committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from models.alerts.kinds import AlertKind
from models.alerts.states import DeliveryState
from models.db import insert_ignoring_conflicts
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
    values = alert_values(
        kind, link=link, reason=reason, key_extra=key_extra, payload=payload, now=now
    )
    return insert_ignoring_conflicts(session, Alert, values) is not None


def alert_values(
    kind: AlertKind,
    *,
    link: Link | None = None,
    reason: str | None = None,
    key_extra: str | None = None,
    payload: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The outbox row of an alert (``link`` as it is once the change is saved)."""
    now = now or utcnow()
    body: dict[str, Any] = {"kind": kind.value, "reason": reason}
    if link is not None:
        body |= {
            "provider": link.provider,
            "number": link.number,
            "campaign_id": link.campaign_id,
            "generation": link.generation,
            "state": link.state,
            "provider_status": link.provider_status,
            # When the link entered its current state (updated_at moves only on changes).
            "since": link.updated_at.isoformat(),
        }
    body |= payload or {}
    return {
        "kind": kind.value,
        "dedupe_key": dedupe_key(kind, link, key_extra),
        "link_id": link.id if link is not None else None,
        "provider": link.provider if link is not None else body.get("provider"),
        "number": link.number if link is not None else body.get("number"),
        "campaign_id": link.campaign_id if link is not None else body.get("campaign_id"),
        "generation": link.generation if link is not None else None,
        "payload": body,
        "state": DeliveryState.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def recent_alerts(
    session: Session,
    *,
    since: datetime | None = None,
    kind: str | None = None,
    limit: int = 200,
) -> Sequence[Alert]:
    """Alerts newest first (``ix_alerts_created``)."""
    stmt = select(Alert)
    if since is not None:
        stmt = stmt.where(col(Alert.created_at) >= since)
    if kind is not None:
        stmt = stmt.where(col(Alert.kind) == kind)
    return session.exec(
        stmt.order_by(col(Alert.created_at).desc(), col(Alert.id).desc()).limit(limit)
    ).all()
