"""Audit questions as plain functions: a link's history, its state at a moment, events.

Pagination is keyset on the audit row id: ids only grow, so a cursor stays stable while rows
are added.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from models.tables import Link, LinkEvent


def link_history(
    session: Session, provider: str, number: str, *, after_id: int = 0, limit: int | None = None
) -> Sequence[LinkEvent]:
    """Audit rows of one number, oldest first."""
    stmt = (
        select(LinkEvent)
        .join(Link, col(Link.id) == col(LinkEvent.link_id))
        .where(Link.provider == provider, Link.number == number, col(LinkEvent.id) > after_id)
        .order_by(col(LinkEvent.id))
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return session.exec(stmt).all()


def state_as_of(session: Session, provider: str, number: str, at: datetime) -> LinkEvent | None:
    """The audit row in force at ``at`` (what dlcsync had recorded), or None before any."""
    link_id = session.exec(
        select(Link.id).where(Link.provider == provider, Link.number == number)
    ).first()
    if link_id is None:
        return None
    stmt = (
        select(LinkEvent)
        .where(LinkEvent.link_id == link_id, col(LinkEvent.recorded_at) <= at)
        .order_by(col(LinkEvent.recorded_at).desc(), col(LinkEvent.id).desc())
        .limit(1)
    )
    return session.exec(stmt).first()


def events(
    session: Session,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    state: str | None = None,
    provider: str | None = None,
    campaign_id: str | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> Sequence[LinkEvent]:
    """Audit rows in id order, filtered by time range [since, until), to-state, provider and
    campaign."""
    stmt = select(LinkEvent).where(col(LinkEvent.id) > after_id)
    if since is not None:
        stmt = stmt.where(col(LinkEvent.recorded_at) >= since)
    if until is not None:
        stmt = stmt.where(col(LinkEvent.recorded_at) < until)
    if state is not None:
        stmt = stmt.where(LinkEvent.to_state == state)
    if provider is not None:
        stmt = stmt.where(LinkEvent.provider == provider)
    if campaign_id is not None:
        stmt = stmt.where(LinkEvent.campaign_id == campaign_id)
    return session.exec(stmt.order_by(col(LinkEvent.id)).limit(limit)).all()
