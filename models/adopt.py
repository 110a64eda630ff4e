"""Adopting links that existed at the carrier before dlcsync (``dlcsync adopt``).

What the carrier lists is a fresh observation (source ``adopted``). Per listed number:

* unknown to dlcsync: a new link in the carrier's state (COMPLETED, or PROCESSING for a
  pending one, polled soon), with exactly one audit row. Inserted set-based: one
  ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` per chunk and one insert of the audit rows of
  the links it inserted (:func:`models.db.insert_many`: on PostgreSQL the rows as arrays), so a
  concurrent run (or a rerun) adds nothing twice.
* known in the same state and campaign: nothing.
* known in another state or on another campaign: the state machine decides, as for a poll,
  so a disagreement is drift (one audit row, one alert), never a silent overwrite. Those are
  saved together by :func:`models.apply.apply_batch` (locked, decided again, compare-and-set).

The known links are read without a lock (one statement; a rerun finds every link known and
must not lock 100,000 rows to change none). Numbers dlcsync holds as linked that the carrier
does not list are reported only; the normal drift check polls them. The caller owns the
transaction.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from models.apply import Item, apply_batch
from models.batch import links_by_number
from models.db import insert_many
from models.links import LinkRef, audit_values, new_link_values, snapshot
from models.polling import Cadence
from models.statemachine import Direction, Observation, Signal, Source, State, Verdict, decide
from models.tables import Link, LinkEvent, utcnow

#: Listed numbers per transaction (and per progress report of an adopt job); each chunk is a
#: constant number of statements, whatever its size.
CHUNK = 5_000
ADOPTED_REASON = "adopted: linked at the carrier before dlcsync"


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
    known = links_by_number(session, provider, list(by_number), lock=False)
    new: list[tuple[Found, State]] = []
    changes: list[Item] = []
    for number, item in by_number.items():
        link = known.get(number)
        if link is None:
            state = carrier_state(item)
            if state is None:
                summary.errors.append((number, f"not a link to adopt: {item.provider_status}"))
            else:
                new.append((item, state))
            continue
        obs = _observation(item, link.generation, now)
        decision = decide(snapshot(link), obs)
        if decision.verdict is Verdict.APPLIED and not dry_run:
            changes.append(Item(provider, number, obs))  # decided again under the lock
        else:
            _count(summary, decision.verdict, decision.drift)
    for decision in apply_batch(session, changes, now=now) if changes else ():
        _count(summary, decision.verdict, decision.drift)
    if dry_run:
        summary.adopted += len(new)
    elif new:
        summary.adopted += _insert(session, provider, new, cadence, now, rng)


def _count(summary: AdoptSummary, verdict: Verdict, drift: bool) -> None:
    if verdict is Verdict.APPLIED and drift:
        summary.drift += 1
    else:
        summary.known += 1


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
            new_link_values(provider, item.number, item.campaign_id, now)
            | {
                "state": state.value,
                "provider_status": item.provider_status,
                "next_poll_at": now + timedelta(seconds=delay),
            }
        )
    inserted = insert_many(session, Link, rows, ignore_conflicts=True, returning=("id", "number"))
    states = {item.number: (item, state) for item, state in new}
    events = []
    for row in inserted:
        item, state = states[row.number]
        events.append(
            audit_values(
                LinkRef(int(row.id), provider, row.number),
                from_state=None,
                to_state=state,
                generation=1,
                campaign_id=item.campaign_id,
                source=Source.ADOPTED,
                now=now,
                provider_status=item.provider_status,
                provider_time=item.provider_time,
                reason=ADOPTED_REASON,
            )
        )
    insert_many(session, LinkEvent, events)
    return len(inserted)


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
