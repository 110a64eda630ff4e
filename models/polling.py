"""Durable time: which links are due, claiming them safely, and when to look next.

A claim moves ``next_poll_at`` forward by a lease inside the claiming transaction
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises claims).
Two beat processes or many workers therefore never take the same link in one interval; if
the claimer dies, the lease runs out and the link is due again.

Leases are short (``CLAIM_LEASE``) and renewed while the claimer works (``renew_lease``); the
lease's end (``next_poll_at``) is the holder's token, so a renewal or a release only touches
links still leased to that claimer, never one already rescheduled or claimed by another.
Claims take whole campaigns, so a campaign is listed once per round, not once per slice.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from models.db import pairs_in, update_many
from models.statemachine import TERMINAL, State
from models.tables import Link, utcnow

#: How long a claim holds a link unless renewed: a dead claimer's links are due again after it.
CLAIM_LEASE = timedelta(seconds=20)
REQUESTED = (State.LINK_REQUESTED.value, State.UNLINK_REQUESTED.value)


@dataclass(frozen=True)
class Claim:
    """A due link, as it was when claimed (the poll result is checked against it)."""

    link_id: int
    provider: str
    number: str
    campaign_id: str
    prior_campaign_id: str | None
    state: State
    generation: int
    direction: str
    needs_check: bool
    attempts: int
    #: The operator asked to send this link without the pre-flight checks.
    skip_preflight: bool = False

    @property
    def requested(self) -> bool:
        """The provider has not accepted our request yet: it must be sent."""
        return self.state.value in REQUESTED


def claim_due(
    session: Session,
    *,
    now: datetime | None = None,
    limit: int = 500,
    provider: str | None = None,
    campaign_id: str | None = None,
    lease: timedelta = CLAIM_LEASE,
    everything: bool = False,
) -> list[Claim]:
    """Claim the due links of whole campaigns, oldest due first, up to ``limit`` links (all
    matching links when ``everything``); each claimed link is leased until ``now + lease``.

    Campaigns are taken while their due links fit in ``limit``, so none is split between
    rounds. A campaign with more due links than ``limit`` on its own is the exception: when it
    comes first it is claimed ``limit`` links at a time (its oldest due first), one slice per
    round, because a run must stay bounded.
    """
    now = now or utcnow()
    stmt = select(Link)
    if not everything:
        stmt = stmt.where(col(Link.next_poll_at) <= now)
    if provider is not None:
        stmt = stmt.where(Link.provider == provider)
    if campaign_id is not None:
        stmt = stmt.where(Link.campaign_id == campaign_id)
    if not everything:
        campaigns = _due_campaigns(session, now=now, limit=limit, provider=provider)
        if not campaigns:
            return []
        stmt = stmt.where(sa.tuple_(col(Link.provider), col(Link.campaign_id)).in_(campaigns))
    stmt = stmt.order_by(col(Link.next_poll_at), col(Link.id)).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    links = session.exec(stmt).all()
    if not links:
        return []
    ids = [link.id for link in links]
    session.execute(
        sa.update(Link)
        .where(col(Link.id).in_(ids))
        .values(next_poll_at=now + lease)
        .execution_options(synchronize_session=False)
    )
    return [
        Claim(
            link_id=link.id or 0,
            provider=link.provider,
            number=link.number,
            campaign_id=link.campaign_id,
            prior_campaign_id=link.prior_campaign_id,
            state=State(link.state),
            generation=link.generation,
            direction=link.direction,
            needs_check=link.needs_check,
            attempts=link.request_attempts if link.state in REQUESTED else link.poll_attempts,
            skip_preflight=link.skip_preflight,
        )
        for link in links
    ]


def _due_campaigns(
    session: Session, *, now: datetime, limit: int, provider: str | None
) -> list[tuple[str, str]]:
    """The (provider, campaign) pairs whose due links a claim of ``limit`` takes whole: the
    oldest due first, while they fit (the first one always, even alone over ``limit``)."""
    first_due = sa.func.min(col(Link.next_poll_at))
    stmt = (
        sa.select(col(Link.provider), col(Link.campaign_id), sa.func.count())
        .where(col(Link.next_poll_at) <= now)
        .group_by(col(Link.provider), col(Link.campaign_id))
        .order_by(first_due, col(Link.provider), col(Link.campaign_id))
        .limit(limit)
    )
    if provider is not None:
        stmt = stmt.where(col(Link.provider) == provider)
    chosen: list[tuple[str, str]] = []
    taken = 0
    for prov, campaign, due in session.execute(stmt).all():
        if chosen and taken + int(due) > limit:
            break
        chosen.append((prov, campaign))
        taken += int(due)
    return chosen


def renew_lease(
    session: Session,
    link_ids: Iterable[int],
    held_until: datetime,
    *,
    now: datetime | None = None,
    lease: timedelta = CLAIM_LEASE,
) -> tuple[set[int], datetime]:
    """Extend the lease of the links still leased until ``held_until`` to ``now + lease``.

    A link rescheduled since (its work is done), claimed again by another claimer (our lease
    ran out) or made due by a callback or an operator no longer carries ``held_until``, so it
    is left alone. Returns the ids still held and the new end of their lease.
    """
    now = now or utcnow()
    until = now + lease
    ids = sorted(set(link_ids))
    if not ids:
        return set(), until
    mine = sa.and_(col(Link.id).in_(ids), col(Link.next_poll_at) == held_until)
    if session.get_bind().dialect.name == "postgresql":
        # Lock in id order like every batch writer, and skip a link the run is saving right
        # now (it is being rescheduled): a heartbeat never waits for, nor deadlocks with, work.
        locked = (
            sa.select(col(Link.id))
            .where(mine)
            .order_by(col(Link.id))
            .with_for_update(skip_locked=True)
        )
        mine = col(Link.id).in_(locked.scalar_subquery())
    held = session.execute(
        sa.update(Link)
        .where(mine)
        .values(next_poll_at=until)
        .returning(col(Link.id))
        .execution_options(synchronize_session=False)
    )
    return {int(i) for i in held.scalars()}, until


def release_lease(
    session: Session, link_ids: Iterable[int], held_until: datetime, *, now: datetime | None = None
) -> int:
    """Make the links still leased until ``held_until`` due now (a graceful shutdown gives its
    unfinished work back). Returns how many."""
    ids = sorted(set(link_ids))
    if not ids:
        return 0
    result = session.execute(
        sa.update(Link)
        .where(col(Link.id).in_(ids), col(Link.next_poll_at) == held_until)
        .values(next_poll_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def campaign_sizes(session: Session, provider: str, campaign_ids: Sequence[str]) -> dict[str, int]:
    """How many links we hold per campaign (to choose list versus per-number polling)."""
    rows = session.exec(
        select(Link.campaign_id, sa.func.count())
        .where(Link.provider == provider, col(Link.campaign_id).in_(campaign_ids))
        .group_by(col(Link.campaign_id))
    ).all()
    return {campaign: int(count) for campaign, count in rows}


@dataclass(frozen=True)
class Cadence:
    """Polling cadence (DESIGN §3): soon while pending, backing off; slowly once terminal."""

    interval: float = 60.0
    cap: float = 1800.0
    drift_check: float = 86400.0

    def after_poll(self, state: State, attempts: int, rng: random.Random | None = None) -> float:
        rng = rng or random.Random()
        if state in TERMINAL:
            return self.drift_check * rng.uniform(0.9, 1.1)
        return self.backoff(attempts, rng)

    def backoff(self, attempts: int, rng: random.Random | None = None) -> float:
        """Capped exponential backoff with jitter (x0.75 to 1.0 past the first)."""
        rng = rng or random.Random()
        base: float = min(self.interval * (2 ** max(attempts, 0)), self.cap)
        return base if attempts <= 0 else base * rng.uniform(0.75, 1.0)


@dataclass(frozen=True)
class Schedule:
    """When to look at a claimed link next, and what to remember until then (None: keep)."""

    claim: Claim
    delay: float
    poll_attempts: int | None = None
    request_attempts: int | None = None
    error: str | None = None
    needs_check: bool | None = None
    clear_prior_campaign: bool = False

    def values(self, now: datetime) -> dict[str, object]:
        values: dict[str, object] = {
            "next_poll_at": now + timedelta(seconds=self.delay),
            "last_error": self.error,
        }
        if self.poll_attempts is not None:
            values["poll_attempts"] = self.poll_attempts
        if self.request_attempts is not None:
            values["request_attempts"] = self.request_attempts
        if self.needs_check is not None:
            values["needs_check"] = self.needs_check
        if self.clear_prior_campaign:
            values["prior_campaign_id"] = None
        return values


def reschedule(
    session: Session,
    claim: Claim,
    *,
    delay: float,
    now: datetime | None = None,
    poll_attempts: int | None = None,
    request_attempts: int | None = None,
    error: str | None = None,
    needs_check: bool | None = None,
    clear_prior_campaign: bool = False,
) -> None:
    """Set the next poll (or request retry) of a claimed link, if its generation still holds."""
    schedule = Schedule(
        claim, delay, poll_attempts, request_attempts, error, needs_check, clear_prior_campaign
    )
    reschedule_many(session, [schedule], now=now)


def reschedule_many(
    session: Session, schedules: Sequence[Schedule], *, now: datetime | None = None
) -> None:
    """Set the next poll of many claimed links whose generation still holds: one statement
    per set of columns written (a handful at most, whatever the number of links).

    A new generation (the operator asked again meanwhile) keeps its own schedule.
    """
    now = now or utcnow()
    shapes: dict[tuple[str, ...], list[dict[str, object]]] = defaultdict(list)
    for schedule in schedules:
        values = schedule.values(now)
        shapes[tuple(sorted(values))].append(
            {"id": schedule.claim.link_id, "was_generation": schedule.claim.generation, **values}
        )
    for columns, rows in shapes.items():
        update_many(session, Link, rows, assign=columns, match=("generation",))


def due_now_values(now: datetime) -> dict[str, Any]:
    """What makes a link due now with its backoff reset: a callback's hint."""
    return {"next_poll_at": now, "poll_attempts": 0}


def poll_soon(session: Session, keys: Iterable[tuple[str, str]], *, now: datetime) -> None:
    """Make these (provider, number) links due now, their backoff reset (a callback's hint)."""
    wanted = set(keys)
    if not wanted:
        return
    table = Link.__table__  # type: ignore[attr-defined]
    session.execute(
        sa.update(Link)
        .where(pairs_in(session, table.c.provider, table.c.number, wanted))
        .values(due_now_values(now))
        .execution_options(synchronize_session=False)
    )


def make_due(
    session: Session, *, now: datetime, provider: str | None = None, campaign_id: str | None = None
) -> int:
    """Make every matching link due now (``dlcsync reconcile``). Returns how many."""
    stmt = sa.update(Link).values(next_poll_at=now)
    if provider is not None:
        stmt = stmt.where(col(Link.provider) == provider)
    if campaign_id is not None:
        stmt = stmt.where(col(Link.campaign_id) == campaign_id)
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]
