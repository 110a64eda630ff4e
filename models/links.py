"""Saving state machine decisions: the one place a link's state changes.

Load → decide → save under a row lock, with a compare-and-set on (state, generation,
observed_at) as a second guard, the audit row and any alert in the same transaction. The
caller owns the transaction (commit or rollback); these functions only add to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlmodel import Session, select

from models import mapping
from models.alerts.outbox import raise_alert
from models.db import insert_ignoring_conflicts
from models.statemachine import (
    AlertKind,
    Decision,
    Direction,
    LinkSnapshot,
    Observation,
    Request,
    Source,
    State,
    Verdict,
    decide,
    request_link,
    request_unlink,
)
from models.tables import Link, LinkEvent, utcnow

NOT_MANAGED = "number is not managed by dlcsync"


class ConcurrentChange(Exception):
    """The link changed between load and save; the caller retries the whole transaction."""


T = TypeVar("T")

#: Tries of a whole transaction that lost a compare-and-set race before giving up.
CONCURRENT_ATTEMPTS = 3


def retry_concurrent(work: Callable[[], T], *, attempts: int = CONCURRENT_ATTEMPTS) -> T:
    """Run ``work`` (a whole transaction, opened and committed inside it) again when a link
    changed under it; the last :class:`ConcurrentChange` propagates."""
    for _ in range(attempts - 1):
        try:
            return work()
        except ConcurrentChange:
            pass
    return work()


def snapshot(link: Link) -> LinkSnapshot:
    return LinkSnapshot(
        state=State(link.state),
        generation=link.generation,
        campaign_id=link.campaign_id,
        direction=Direction(link.direction),
        observed_at=link.observed_at,
        generation_started_at=link.generation_started_at,
    )


def load(session: Session, provider: str, number: str, *, lock: bool = True) -> Link | None:
    stmt = select(Link).where(Link.provider == provider, Link.number == number)
    if lock:
        stmt = stmt.with_for_update()
    return session.exec(stmt).first()


def _cas_update(session: Session, link: Link, **values: object) -> None:
    assert link.id is not None
    result = session.execute(
        sa.update(Link)
        .where(
            Link.id == link.id,  # type: ignore[arg-type]
            Link.state == link.state,  # type: ignore[arg-type]
            Link.generation == link.generation,  # type: ignore[arg-type]
            Link.observed_at == link.observed_at,  # type: ignore[arg-type]
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise ConcurrentChange(f"link {link.provider} {link.number} changed concurrently")
    session.expire(link)


class Identified(Protocol):
    """What an audit row needs to know of its link."""

    @property
    def id(self) -> int | None: ...
    @property
    def provider(self) -> str: ...
    @property
    def number(self) -> str: ...


@dataclass(frozen=True)
class LinkRef:
    """A link named by its id (a row just inserted, no ORM object built)."""

    id: int
    provider: str
    number: str


def audit_values(
    link: Identified,
    *,
    from_state: State | None,
    to_state: State,
    generation: int,
    campaign_id: str,
    source: Source,
    now: datetime,
    provider_status: str | None = None,
    provider_time: datetime | None = None,
    reason: str | None = None,
    drift: bool = False,
    inbox_id: int | None = None,
) -> dict[str, Any]:
    """The audit row of one change."""
    assert link.id is not None
    return {
        "link_id": link.id,
        "provider": link.provider,
        "number": link.number,
        "campaign_id": campaign_id,
        "generation": generation,
        "from_state": from_state.value if from_state else None,
        "to_state": to_state.value,
        "source": source.value,
        "provider_status": provider_status,
        "provider_time": provider_time,
        "recorded_at": now,
        "reason": reason,
        "drift": drift,
        "inbox_id": inbox_id,
    }


@dataclass(frozen=True)
class AlertArgs:
    kind: AlertKind
    reason: str | None
    key_extra: str | None


@dataclass(frozen=True)
class Change:
    """What an applied decision writes: its audit row, the link's new values, its alert."""

    event: dict[str, Any]
    values: dict[str, Any]
    alert: AlertArgs | None


def unknown_status_alert(obs: Observation, decision: Decision) -> AlertArgs | None:
    """The alert an observation with an unknown provider status raises, applied or not."""
    if decision.alert is not AlertKind.UNKNOWN_STATUS:
        return None
    return AlertArgs(AlertKind.UNKNOWN_STATUS, decision.reason, obs.provider_status)


def change_of(
    link: Link,
    obs: Observation,
    decision: Decision,
    *,
    now: datetime,
    inbox_id: int | None,
    retrying: bool = False,
) -> Change:
    """The writes of an applied decision about ``link`` (as loaded, before the change).

    ``retrying``: the failure is followed at once by the automatic retry
    (:func:`dormant_retry_due`), so it raises no alert.
    """
    assert decision.to_state is not None
    before = snapshot(link)
    to_state = decision.to_state
    campaign_id = decision.campaign_id or link.campaign_id
    failed = to_state in (State.FAILED, State.UNLINK_FAILED)
    event = audit_values(
        link,
        from_state=before.state,
        to_state=to_state,
        generation=before.generation,
        campaign_id=campaign_id,
        source=obs.source,
        now=now,
        provider_status=obs.provider_status,
        provider_time=obs.provider_time,
        reason=decision.reason,
        drift=decision.drift,
        inbox_id=inbox_id,
    )
    values = {
        "state": to_state.value,
        "campaign_id": campaign_id,
        "observed_at": max(obs.observed_at, before.observed_at),
        "provider_status": obs.provider_status,
        "failure_reason": decision.reason if failed else None,
        "drift": decision.drift,
        "updated_at": now,
    }
    alert = None
    if decision.alert is not None and not retrying:
        # Drift may recur within a generation: each one is its own alert.
        key_extra = f"{to_state.value}@{now.isoformat()}" if decision.drift else None
        alert = AlertArgs(decision.alert, decision.reason, key_extra)
    return Change(event, values, alert)


def apply_observation(
    session: Session,
    provider: str,
    number: str,
    obs: Observation,
    *,
    inbox_id: int | None = None,
    now: datetime | None = None,
) -> Decision:
    """Decide on an observation of one number and save the result (not committed).

    The single-row path; ``models.apply.apply_batch`` is the same for many observations.
    """
    now = now or utcnow()
    link = load(session, provider, number)
    if link is None:
        return Decision(Verdict.IGNORED, reason=NOT_MANAGED)
    decision = decide(snapshot(link), obs)
    unknown = unknown_status_alert(obs, decision)
    if unknown is not None:
        _raise(session, link, unknown, now)
    if decision.verdict is not Verdict.APPLIED:
        if mapping.applies(decision):
            mapping.record(session, link, obs, now=now)
        return decision
    retry = dormant_retry_due(session, link, obs, decision)
    change = change_of(link, obs, decision, now=now, inbox_id=inbox_id, retrying=retry)
    session.add(LinkEvent(**change.event))
    _cas_update(session, link, **change.values)
    if change.alert is not None:
        _raise(session, link, change.alert, now)
    if mapping.applies(decision):
        mapping.record(session, link, obs, now=now)
    if retry:
        retry_dormant(session, provider, number, now=now)
    return decision


#: The audit reason of the automatic second attempt after a dormant-campaign failure.
RETRY_REASON = "retry: the failure said the campaign was dormant (the first attempt woke it)"


def dormant_retry_due(session: Session, link: Link, obs: Observation, decision: Decision) -> bool:
    """Whether this decision fails a link the way Telnyx fails a dormant campaign's first
    assignment (the failure woke it up), so the link is asked for once more, automatically.

    Once: not when the failing generation (``link`` as loaded) was itself the retry. Both
    apply paths (this module's single-row one and ``models.apply``) ask this, then call
    :func:`retry_dormant` after saving the failure.
    """
    if not obs.retry_once or decision.verdict is not Verdict.APPLIED:
        return False
    if decision.to_state is not State.FAILED:
        return False
    was_retry = session.exec(
        select(LinkEvent.id).where(
            LinkEvent.link_id == link.id,
            LinkEvent.generation == link.generation,
            LinkEvent.to_state == State.LINK_REQUESTED.value,
            LinkEvent.reason == RETRY_REASON,
        )
    ).first()
    return was_retry is None


def retry_dormant(session: Session, provider: str, number: str, *, now: datetime) -> None:
    """Start the automatic retry of a saved failure: a new generation, so the history shows
    both attempts, sent with the failed one's pre-flight choice."""
    link = load(session, provider, number)
    assert link is not None
    session.refresh(link)  # the failure may have been saved by a bulk statement
    _start_generation(
        session,
        link,
        request_link(snapshot(link), link.campaign_id),
        Source.SYSTEM,
        now,
        reason=RETRY_REASON,
        skip_preflight=link.skip_preflight,
    )


def _raise(session: Session, link: Link, alert: AlertArgs, now: datetime) -> None:
    raise_alert(
        session, alert.kind, link=link, reason=alert.reason, key_extra=alert.key_extra, now=now
    )


@dataclass(frozen=True)
class RequestResult:
    accepted: bool
    changed: bool
    reason: str | None
    link: Link | None


def new_link_values(
    provider: str, number: str, campaign_id: str, now: datetime, skip_preflight: bool = False
) -> dict[str, Any]:
    """The row of a link the operator asks for the first time (generation 1, requested).

    ``skip_preflight``: the worker sends it without the pre-flight checks.
    """
    return {
        "provider": provider,
        "number": number,
        "campaign_id": campaign_id,
        "state": State.LINK_REQUESTED.value,
        "generation": 1,
        "direction": Direction.LINK.value,
        "drift": False,
        "observed_at": now,
        "generation_started_at": now,
        "next_poll_at": now,
        "poll_attempts": 0,
        "request_attempts": 0,
        "needs_check": False,
        "skip_preflight": skip_preflight,
        "created_at": now,
        "updated_at": now,
    }


def new_link_audit(
    link: Identified, campaign_id: str, source: Source, now: datetime
) -> dict[str, Any]:
    """The audit row of a link's creation (``link`` carries its new id)."""
    return audit_values(
        link,
        from_state=None,
        to_state=State.LINK_REQUESTED,
        generation=1,
        campaign_id=campaign_id,
        source=source,
        now=now,
        reason="link requested",
    )


def _insert_if_missing(
    session: Session,
    provider: str,
    number: str,
    campaign_id: str,
    now: datetime,
    skip_preflight: bool = False,
) -> bool:
    """Insert a fresh link row unless one exists; True if this call inserted it."""
    values = new_link_values(provider, number, campaign_id, now, skip_preflight)
    return insert_ignoring_conflicts(session, Link, values) is not None


def request_link_of(
    session: Session,
    provider: str,
    number: str,
    campaign_id: str,
    *,
    source: Source,
    now: datetime | None = None,
    skip_preflight: bool = False,
) -> RequestResult:
    """Record an operator's wish to link ``number`` to ``campaign_id`` (idempotent).

    ``skip_preflight``: the worker sends this link without the pre-flight checks.
    """
    now = now or utcnow()
    if _insert_if_missing(session, provider, number, campaign_id, now, skip_preflight):
        link = load(session, provider, number)
        assert link is not None
        session.add(LinkEvent(**new_link_audit(link, campaign_id, source, now)))
        return RequestResult(True, True, "link requested", link)
    link = load(session, provider, number)
    assert link is not None
    return _start_generation(
        session,
        link,
        request_link(snapshot(link), campaign_id),
        source,
        now,
        skip_preflight=skip_preflight,
    )


def request_unlink_of(
    session: Session, provider: str, number: str, *, source: Source, now: datetime | None = None
) -> RequestResult:
    """Record an operator's wish to unlink ``number``. Unknown numbers are not accepted."""
    now = now or utcnow()
    link = load(session, provider, number)
    if link is None:
        return RequestResult(False, False, NOT_MANAGED, None)
    return _start_generation(session, link, request_unlink(snapshot(link)), source, now)


@dataclass(frozen=True)
class GenerationChange:
    """What an operator's request that starts a new generation writes."""

    reason: str
    event: dict[str, Any]
    values: dict[str, Any]


def generation_change(
    link: Link,
    req: Request,
    source: Source,
    now: datetime,
    *,
    skip_preflight: bool = False,
    reason: str | None = None,
) -> GenerationChange:
    """The audit row and new values of ``link`` (as loaded) when ``req`` starts a generation.

    ``skip_preflight`` as for :func:`new_link_values`; ``reason`` replaces the audit row's
    usual one (the automatic retry names itself).
    """
    assert req.state is not None and req.direction is not None and req.campaign_id is not None
    before = snapshot(link)
    generation = before.generation + 1
    reason = reason or (
        f"move from campaign {req.prior_campaign_id}"
        if req.prior_campaign_id
        else f"{req.direction} requested"
    )
    event = audit_values(
        link,
        from_state=before.state,
        to_state=req.state,
        generation=generation,
        campaign_id=req.campaign_id,
        source=source,
        now=now,
        reason=reason,
    )
    # The new generation starts no earlier than everything observed so far; a callback
    # observed at or before that instant belongs to an older generation (statemachine).
    started = max(now, before.observed_at)
    values = {
        "state": req.state.value,
        "generation": generation,
        "direction": req.direction.value,
        "campaign_id": req.campaign_id,
        "prior_campaign_id": req.prior_campaign_id,
        "observed_at": started,
        "generation_started_at": started,
        "provider_status": None,
        "failure_reason": None,
        "carrier_mapping": None,
        "drift": False,
        "next_poll_at": now,
        "poll_attempts": 0,
        "request_attempts": 0,
        "needs_check": False,
        "last_error": None,
        "skip_preflight": skip_preflight,
        "updated_at": now,
    }
    return GenerationChange(reason, event, values)


def _start_generation(
    session: Session,
    link: Link,
    req: Request,
    source: Source,
    now: datetime,
    *,
    skip_preflight: bool = False,
    reason: str | None = None,
) -> RequestResult:
    if not req.new_generation:
        return RequestResult(True, False, req.reason, link)
    change = generation_change(link, req, source, now, skip_preflight=skip_preflight, reason=reason)
    session.add(LinkEvent(**change.event))
    _cas_update(session, link, **change.values)
    session.refresh(link)
    return RequestResult(True, True, change.reason, link)
