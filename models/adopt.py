"""Adopting links that existed at the carrier before dlcsync (``dlcsync adopt``).

What the carrier lists is a fresh observation (source ``adopted``). Per listed number:

* unknown to dlcsync: a new link in the carrier's state (COMPLETED, or PROCESSING for a
  pending one, polled soon), with exactly one audit row. Inserted set-based: one multi-row
  ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` per chunk and one multi-row insert of the
  audit rows, so a concurrent run (or a rerun) adds nothing twice.
* known in the same state and campaign: nothing.
* known in another state or on another campaign: the state machine decides, as for a poll,
  so a disagreement is drift (one audit row, one alert), never a silent overwrite.

Numbers dlcsync holds as linked that the carrier does not list are reported only; the
normal drift check polls them. The caller owns the transaction.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from models.links import apply_observation, snapshot
from models.polling import Cadence
from models.statemachine import Direction, Observation, Signal, Source, State, Verdict, decide
from models.tables import Link, LinkEvent, utcnow

#: Rows per multi-row statement (SQLite allows 32,766 bound values).
CHUNK = 500


@dataclass(frozen=True)
class Found:
    """One number as the carrier lists it (E.164, provider-neutral)."""

    number: str
    campaign_id: str
    provider_status: str
    signal: Signal | None
    direction: Direction | None = None
    provider_time: datetime | None = None


@dataclass
class AdoptSummary:
    adopted: int = 0
    known: int = 0
    drift: int = 0
    #: (number or campaign, why): listed but not adoptable, or a listing that failed.
    errors: list[tuple[str, str]] = field(default_factory=list)
    #: Numbers dlcsync holds as linked that the carrier did not list (left to the drift check).
    not_listed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "adopted": self.adopted,
            "already_known": self.known,
            "drift": self.drift,
            "errors": len(self.errors),
            "error_samples": [{"what": w, "why": y} for w, y in self.errors[:50]],
            "not_listed": len(self.not_listed),
            "not_listed_samples": self.not_listed[:50],
        }


def carrier_state(found: Found) -> State | None:
    """The state a listed number is adopted in; None when it is not a link to adopt."""
    if found.signal is Signal.LINKED:
        return State.COMPLETED
    if found.signal is Signal.PENDING and found.direction is not Direction.UNLINK:
        return State.PROCESSING
    return None


def adopt_chunk(
    session: Session,
    provider: str,
    found: Sequence[Found],
    summary: AdoptSummary,
    *,
    cadence: Cadence,
    dry_run: bool = False,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> None:
    """Record one chunk (at most :data:`CHUNK` distinct numbers) of a carrier listing."""
    now = now or utcnow()
    rng = rng or random.Random()
    by_number = {f.number: f for f in found}
    known = {
        link.number: link
        for link in session.exec(
            select(Link).where(Link.provider == provider, col(Link.number).in_(list(by_number)))
        )
    }
    new: list[tuple[Found, State]] = []
    for number, item in by_number.items():
        link = known.get(number)
        state = carrier_state(item)
        if link is None:
            if state is None:
                summary.errors.append((number, f"not a link to adopt: {item.provider_status}"))
            else:
                new.append((item, state))
            continue
        obs = _observation(item, link.generation, now)
        decision = decide(snapshot(link), obs)
        if decision.verdict is Verdict.APPLIED and not dry_run:
            decision = apply_observation(session, provider, number, obs, now=now)
        if decision.verdict is Verdict.APPLIED and decision.drift:
            summary.drift += 1
        else:
            summary.known += 1
    if dry_run:
        summary.adopted += len(new)
    elif new:
        summary.adopted += _insert(session, provider, new, cadence, now, rng)


def _observation(item: Found, generation: int, now: datetime) -> Observation:
    return Observation(
        source=Source.ADOPTED,
        provider_status=item.provider_status,
        observed_at=now,
        signal=item.signal,
        direction=item.direction,
        campaign_id=item.campaign_id,
        generation=generation,
        provider_time=item.provider_time,
    )


def _insert(
    session: Session,
    provider: str,
    new: list[tuple[Found, State]],
    cadence: Cadence,
    now: datetime,
    rng: random.Random,
) -> int:
    """Insert the new links and their audit rows: two statements. Returns how many were new."""
    rows = []
    for item, state in new:
        # A pending link is polled soon; a completed one waits for its drift check.
        delay = cadence.after_poll(state, 0, rng) if state is State.COMPLETED else 0.0
        rows.append(
            {
                "provider": provider,
                "number": item.number,
                "campaign_id": item.campaign_id,
                "state": state.value,
                "generation": 1,
                "direction": Direction.LINK.value,
                "provider_status": item.provider_status,
                "drift": False,
                "observed_at": now,
                "generation_started_at": now,
                "next_poll_at": now + timedelta(seconds=delay),
                "poll_attempts": 0,
                "request_attempts": 0,
                "needs_check": False,
                "skip_preflight": False,
                "created_at": now,
                "updated_at": now,
            }
        )
    inserted = session.execute(
        _insert_ignoring(session, rows).returning(col(Link.id), col(Link.number))
    ).all()
    if not inserted:
        return 0
    states = {item.number: (item, state) for item, state in new}
    events = []
    for link_id, number in inserted:
        item, state = states[number]
        events.append(
            {
                "link_id": link_id,
                "provider": provider,
                "number": number,
                "campaign_id": item.campaign_id,
                "generation": 1,
                "from_state": None,
                "to_state": state.value,
                "source": Source.ADOPTED.value,
                "provider_status": item.provider_status,
                "provider_time": item.provider_time,
                "recorded_at": now,
                "reason": "adopted: linked at the carrier before dlcsync",
                "drift": False,
                "inbox_id": None,
            }
        )
    session.execute(sa.insert(LinkEvent).values(events))
    return len(inserted)


def _insert_ignoring(session: Session, rows: list[dict[str, Any]]) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(Link).values(rows).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(Link).values(rows).on_conflict_do_nothing()


def linked_not_listed(
    session: Session,
    provider: str,
    listed: Iterable[str],
    campaign_ids: Sequence[str] | None = None,
) -> list[str]:
    """Numbers dlcsync holds as COMPLETED (in ``campaign_ids``, if given) that are not listed."""
    stmt = select(Link.number).where(Link.provider == provider, Link.state == State.COMPLETED.value)
    if campaign_ids:
        stmt = stmt.where(col(Link.campaign_id).in_(list(campaign_ids)))
    seen = set(listed)
    return sorted(n for n in session.exec(stmt) if n not in seen)
