"""Campaign questions as plain functions: list links (keyset pages), count them per state.

Pagination is keyset on the link id, like :mod:`models.history`: a cursor stays stable while
rows are added. Counting groups on (provider, campaign_id, state), which the
``ix_links_campaign_state`` index answers without touching the table rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlmodel import Session, col, select

from models.statemachine import State
from models.tables import Link


def list_links(
    session: Session,
    *,
    provider: str | None = None,
    campaign_id: str | None = None,
    state: str | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> Sequence[Link]:
    """Links in id order, after ``after_id``, filtered by provider, campaign and state."""
    stmt = select(Link).where(col(Link.id) > after_id)
    if provider is not None:
        stmt = stmt.where(Link.provider == provider)
    if campaign_id is not None:
        stmt = stmt.where(Link.campaign_id == campaign_id)
    if state is not None:
        stmt = stmt.where(Link.state == state)
    return session.exec(stmt.order_by(col(Link.id)).limit(limit)).all()


def campaign_counts(session: Session, provider: str, campaign_id: str) -> dict[State, int]:
    """How many of a campaign's links are in each state; every state present, zeros too."""
    counts = dict.fromkeys(State, 0)
    rows = session.exec(
        select(Link.state, sa.func.count())
        .where(Link.provider == provider, Link.campaign_id == campaign_id)
        .group_by(Link.state)
    ).all()
    for state, n in rows:
        if state in counts:
            counts[State(state)] = n
    return counts
