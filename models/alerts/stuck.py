"""``stuck`` alerts: one per (link, generation) in flight longer than the threshold
(:func:`models.problems.stuck` says which links are stuck)."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from models.alerts.kinds import AlertKind
from models.alerts.outbox import raise_alert
from models.problems import stuck
from models.tables import Alert, Link, utcnow


def detect_stuck(
    session: Session, *, stuck_after: timedelta, now: datetime | None = None, limit: int = 500
) -> int:
    """Raise one ``stuck`` alert per (link, generation) in flight longer than ``stuck_after``.

    Index-friendly: the stuck predicate is a range scan of ``ix_links_state_updated`` per
    state, and links already alerted are skipped through the unique ``dedupe_key`` index, so
    repeated runs cost little. Returns alerts raised.
    """
    now = now or utcnow()
    key = (
        sa.literal(f"{AlertKind.STUCK.value}:")
        + sa.cast(col(Link.id), sa.String)
        + ":"
        + sa.cast(col(Link.generation), sa.String)
    )
    already = sa.exists().where(col(Alert.dedupe_key) == key)
    stmt = (
        select(Link)
        .where(stuck(stuck_after=stuck_after, now=now), ~already)
        .order_by(col(Link.updated_at))
        .limit(limit)
    )
    raised = 0
    for link in session.exec(stmt).all():
        hours = (now - link.updated_at).total_seconds() / 3600
        reason = (
            f"{link.state} since {link.updated_at.isoformat(timespec='seconds')} "
            f"({hours:.1f} h; the threshold is {stuck_after.total_seconds() / 3600:g} h)"
        )
        raised += raise_alert(session, AlertKind.STUCK, link=link, reason=reason, now=now)
    return raised
