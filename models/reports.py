"""Read-only questions about links, for the API, the dashboard, the CLI and ``/metrics``:
counts per state, pages of links, gauges, transitions over time (problem links:
:mod:`models.problems`).

Pages are keyset on the row id (ids only grow): a cursor stays stable while rows are added,
a caller holds one page at a time however many rows there are, and each page is its own
short transaction. Counting groups on (provider, campaign_id, state), which the
``ix_links_campaign_state`` index answers without touching the table rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from models.db import is_postgres
from models.statemachine import PENDING
from models.tables import Alert, InboxItem, Link, LinkEvent, utcnow


@dataclass(frozen=True)
class StateCount:
    provider: str
    campaign_id: str
    state: str
    count: int


def state_counts(
    session: Session,
    *,
    provider: str | None = None,
    campaign_id: str | None = None,
    state: str | None = None,
) -> list[StateCount]:
    """Links per (provider, campaign, state), sorted."""
    stmt = select(Link.provider, Link.campaign_id, Link.state, sa.func.count()).group_by(
        col(Link.provider), col(Link.campaign_id), col(Link.state)
    )
    stmt = stmt.where(*link_filters(provider, campaign_id, state))
    rows = session.exec(
        stmt.order_by(col(Link.provider), col(Link.campaign_id), col(Link.state))
    ).all()
    return [StateCount(p, c, s, int(n)) for p, c, s, n in rows]


def links_of_number(session: Session, number: str, provider: str | None = None) -> Sequence[Link]:
    stmt = select(Link).where(Link.number == number)
    if provider is not None:
        stmt = stmt.where(Link.provider == provider)
    return session.exec(stmt.order_by(col(Link.provider))).all()


def links_page(
    session: Session,
    *,
    after_id: int = 0,
    limit: int = 1000,
    provider: str | None = None,
    campaign_id: str | None = None,
    state: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Sequence[Link]:
    """Links in id order after ``after_id``; ``since``/``until`` bound ``updated_at``."""
    stmt = select(Link).where(col(Link.id) > after_id, *link_filters(provider, campaign_id, state))
    if since is not None:
        stmt = stmt.where(col(Link.updated_at) >= since)
    if until is not None:
        stmt = stmt.where(col(Link.updated_at) < until)
    return session.exec(stmt.order_by(col(Link.id)).limit(limit)).all()


def link_filters(
    provider: str | None, campaign_id: str | None, state: str | None
) -> list[sa.ColumnElement[bool]]:
    """The optional filters every link query takes."""
    conditions: list[sa.ColumnElement[bool]] = []
    if provider is not None:
        conditions.append(col(Link.provider) == provider)
    if campaign_id is not None:
        conditions.append(col(Link.campaign_id) == campaign_id)
    if state is not None:
        conditions.append(col(Link.state) == state)
    return conditions


# --- gauges computed at scrape time (/metrics) ---------------------------------------------


def provider_state_counts(session: Session) -> dict[tuple[str, str], int]:
    """Links per (provider, state)."""
    stmt = select(Link.provider, Link.state, sa.func.count()).group_by(
        col(Link.provider), col(Link.state)
    )
    return {(p, s): int(n) for p, s, n in session.exec(stmt).all()}


def oldest_pending_by_provider(session: Session) -> dict[str, datetime]:
    """Per provider, when the oldest still-pending request (its generation) started."""
    pending = [s.value for s in PENDING]
    stmt = (
        select(Link.provider, sa.func.min(Link.generation_started_at))
        .where(col(Link.state).in_(pending))
        .group_by(col(Link.provider))
    )
    return {p: _aware(t) for p, t in session.exec(stmt).all() if t is not None}


def inbox_backlog_by_provider(session: Session) -> dict[str, int]:
    """Inbox rows not yet processed (no outcome), per provider."""
    stmt = (
        select(InboxItem.provider, sa.func.count())
        .where(col(InboxItem.outcome).is_(None))
        .group_by(col(InboxItem.provider))
    )
    return {p: int(n) for p, n in session.exec(stmt).all()}


def alert_state_counts(session: Session) -> dict[str, int]:
    """Alerts per state (pending, sent, failed, grouped)."""
    stmt = select(Alert.state, sa.func.count()).group_by(col(Alert.state))
    return {s: int(n) for s, n in session.exec(stmt).all()}


def _aware(value: datetime) -> datetime:
    # Aggregates bypass the column type on SQLite, which hands back naive UTC (or text).
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# --- transitions over time (the dashboard's chart) -----------------------------------------


@dataclass(frozen=True)
class TransitionBucket:
    start: datetime
    to_state: str
    count: int


def transitions_per_hour(
    session: Session, *, hours: int = 24, now: datetime | None = None
) -> list[TransitionBucket]:
    """Audit rows per (hour, to-state) over the last ``hours`` hours, oldest first."""
    now = now or utcnow()
    since = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    if is_postgres(session):
        hour: sa.ColumnElement[Any] = sa.func.date_trunc("hour", col(LinkEvent.recorded_at))
    else:
        hour = sa.func.strftime("%Y-%m-%d %H:00:00", col(LinkEvent.recorded_at))
    stmt = (
        select(hour, LinkEvent.to_state, sa.func.count())
        .where(col(LinkEvent.recorded_at) >= since)
        .group_by(hour, col(LinkEvent.to_state))
        .order_by(hour)
    )
    return [TransitionBucket(_aware(h), s, int(n)) for h, s, n in session.exec(stmt).all()]
