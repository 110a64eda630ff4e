"""Links that need a person: failed, drifted and stuck, one predicate each.

"Stuck" (in flight longer than ``STUCK_AFTER_SECONDS``) is defined here only: the dashboard,
``dlcsync status`` and the stuck alerts (:mod:`models.alerts.stuck`) all use :func:`stuck`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from models.reports import link_filters
from models.statemachine import IN_FLIGHT, State
from models.tables import Link, utcnow

FAILED_STATES = (State.FAILED.value, State.UNLINK_FAILED.value)
IN_FLIGHT_STATES = tuple(s.value for s in IN_FLIGHT)


def failed() -> sa.ColumnElement[bool]:
    return col(Link.state).in_(FAILED_STATES)


def drifted() -> sa.ColumnElement[bool]:
    """A poll found the link in a state dlcsync had not recorded."""
    return col(Link.drift).is_(True)


def stuck(*, stuck_after: timedelta, now: datetime) -> sa.ColumnElement[bool]:
    """In flight (a request sent, no final answer) and unchanged for longer than
    ``stuck_after``. A range scan of ``ix_links_state_updated`` per in-flight state."""
    return sa.and_(col(Link.state).in_(IN_FLIGHT_STATES), col(Link.updated_at) < now - stuck_after)


@dataclass(frozen=True)
class Problem:
    link: Link
    #: "failed", "stuck" or "drifted".
    kind: str
    reason: str


def problem_links(
    session: Session,
    *,
    stuck_after: timedelta,
    provider: str | None = None,
    campaign_id: str | None = None,
    state: str | None = None,
    limit: int = 50,
    now: datetime | None = None,
) -> tuple[list[Problem], int]:
    """Failed, stuck and drifted links, most recently changed first: up to ``limit`` of them,
    and how many there are in all."""
    now = now or utcnow()
    condition = sa.or_(failed(), drifted(), stuck(stuck_after=stuck_after, now=now))
    filters = link_filters(provider, campaign_id, state)
    stmt = select(Link).where(condition, *filters)
    links = session.exec(stmt.order_by(col(Link.updated_at).desc()).limit(limit)).all()
    count_stmt = select(sa.func.count()).select_from(Link).where(condition, *filters)
    total = int(session.exec(count_stmt).one())
    return [_problem(link) for link in links], total


def _problem(link: Link) -> Problem:
    if link.state in FAILED_STATES:
        return Problem(link, "failed", link.failure_reason or link.provider_status or "")
    if link.drift:
        return Problem(link, "drifted", f"found {link.provider_status or link.state} by a poll")
    since = link.updated_at.isoformat(timespec="seconds")
    return Problem(link, "stuck", f"{link.state} since {since}")


def problem_counts(
    session: Session, *, stuck_after: timedelta, now: datetime | None = None
) -> dict[str, int]:
    """How many links are failed, drifted and stuck (each link counted once, with the kind
    :func:`problem_links` would give it)."""
    now = now or utcnow()
    kinds = (
        ("failed", failed()),
        ("drifted", sa.and_(drifted(), sa.not_(failed()))),
        ("stuck", sa.and_(stuck(stuck_after=stuck_after, now=now), sa.not_(drifted()))),
    )
    counts = {}
    for kind, condition in kinds:
        stmt = select(sa.func.count()).select_from(Link).where(condition)
        counts[kind] = int(session.exec(stmt).one())
    return counts
