"""Campaign hygiene: campaigns left empty, and campaigns whose links mostly fail.

- ``campaign_empty``: a campaign dlcsync knows (from its links, or a number that moved away
  from it) has held no number for ``EMPTY_AFTER``. Telnyx suspends campaigns without
  numbers after 15 days (dormant); T-Mobile charges a fee for campaigns without numbers
  for 60 days. Raised once per campaign and empty period (the period starts when its last
  number left, so a campaign that is refilled and emptied again alerts again).
- ``campaign_failing``: more than half of the last ``FAILING_WINDOW`` finished link
  requests of a campaign (one per number: its current request) failed. Raised once per
  campaign and ISO week while new failures keep coming, with the most common reasons, so a
  bad campaign is named as such instead of only as many per-number alerts, and a campaign
  that keeps failing (or fails again after a fix) is named again next week, not never.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from models.alerts import outbox as alerts
from models.alerts.kinds import AlertKind
from models.statemachine import Direction, State
from models.tables import Link, utcnow

EMPTY_AFTER = timedelta(days=14)
FAILING_WINDOW = 20
#: More than this share of the window failed: the campaign is failing.
FAILING_SHARE = 0.5
#: Campaigns with a link failure this recent are checked for campaign_failing.
FAILING_LOOKBACK = timedelta(days=1)
#: States in which a number does not hold (and is not about to hold) the campaign.
NOT_HOLDING = (State.FAILED.value, State.UNLINKED.value)


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):  # SQLite returns aggregates over a UNION as text
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def empty_campaigns(
    session: Session, *, now: datetime, after: timedelta = EMPTY_AFTER
) -> list[tuple[str, str, datetime]]:
    """(provider, campaign, empty since) of campaigns with no number for ``after``."""
    holding = sa.case((col(Link.state).in_(NOT_HOLDING), 0), else_=1)
    current = sa.select(
        col(Link.provider).label("provider"),
        col(Link.campaign_id).label("campaign_id"),
        col(Link.updated_at).label("last"),
        holding.label("holding"),
    )
    moved_away = sa.select(
        col(Link.provider),
        col(Link.prior_campaign_id),
        col(Link.generation_started_at),
        sa.literal(0),
    ).where(col(Link.prior_campaign_id).is_not(None))
    both = sa.union_all(current, moved_away).subquery()
    rows = session.execute(
        sa.select(both.c.provider, both.c.campaign_id, sa.func.max(both.c.last))
        .group_by(both.c.provider, both.c.campaign_id)
        .having(sa.func.sum(both.c.holding) == 0)
    ).all()
    out = []
    for provider, campaign_id, last in rows:
        since = _aware(last)
        if now - since >= after:
            out.append((str(provider), str(campaign_id), since))
    return out


def _empty_reason(provider: str, since: datetime, now: datetime) -> str:
    days = (now - since).total_seconds() / 86400
    rules = []
    if provider == "telnyx":
        rules.append("Telnyx suspends a campaign with no numbers after 15 days (dormant)")
    rules.append("T-Mobile charges a fee for a campaign with no numbers for 60 days")
    return (
        f"no linked number since {since.isoformat(timespec='seconds')} ({days:.1f} days); "
        + "; ".join(rules)
    )


def detect_empty(session: Session, *, now: datetime | None = None) -> int:
    """Raise ``campaign_empty`` once per campaign and empty period. Returns alerts raised."""
    now = now or utcnow()
    raised = 0
    for provider, campaign_id, since in empty_campaigns(session, now=now):
        raised += alerts.raise_alert(
            session,
            AlertKind.CAMPAIGN_EMPTY,
            reason=_empty_reason(provider, since, now),
            key_extra=f"{provider}:{campaign_id}:{since.isoformat()}",
            payload={"provider": provider, "campaign_id": campaign_id, "since": since.isoformat()},
            now=now,
        )
    return raised


def failing_share(
    session: Session, provider: str, campaign_id: str
) -> tuple[int, int, Counter[str]]:
    """(failed, finished, reasons) over the campaign's last FAILING_WINDOW link requests."""
    rows = session.exec(
        select(Link.state, Link.failure_reason)
        .where(
            col(Link.provider) == provider,
            col(Link.campaign_id) == campaign_id,
            col(Link.direction) == Direction.LINK.value,
            col(Link.state).in_([State.COMPLETED.value, State.FAILED.value]),
        )
        .order_by(col(Link.generation_started_at).desc(), col(Link.id).desc())
        .limit(FAILING_WINDOW)
    ).all()
    failed = [reason or "no reason given" for state, reason in rows if state == State.FAILED]
    return len(failed), len(rows), Counter(failed)


def detect_failing(session: Session, *, now: datetime | None = None) -> int:
    """Raise ``campaign_failing`` once per campaign and ISO week while its links mostly fail."""
    now = now or utcnow()
    candidates = session.exec(
        select(Link.provider, Link.campaign_id)
        .where(
            col(Link.state) == State.FAILED.value,
            col(Link.updated_at) >= now - FAILING_LOOKBACK,
        )
        .distinct()
    ).all()
    raised = 0
    for provider, campaign_id in candidates:
        failed, _finished, reasons = failing_share(session, provider, campaign_id)
        if failed <= FAILING_WINDOW * FAILING_SHARE:
            continue
        top = "; ".join(f"{r} ({n})" for r, n in reasons.most_common(3))
        raised += alerts.raise_alert(
            session,
            AlertKind.CAMPAIGN_FAILING,
            reason=f"{failed} of the last {FAILING_WINDOW} link requests failed: {top}",
            key_extra=f"{provider}:{campaign_id}:{now:%G-W%V}",
            payload={
                "provider": provider,
                "campaign_id": campaign_id,
                "failed": failed,
                "reasons": dict(reasons.most_common(5)),
            },
            now=now,
        )
    return raised
