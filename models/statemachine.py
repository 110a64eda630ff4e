"""The link state machine: pure data and pure functions, no I/O.

Every path that changes a link (webhook, poll, operator request) asks this module what to do
and then saves the answer in one transaction. Rules (DESIGN §2):

1. Each operator request starts a new generation; observations of an older generation or of
   another campaign never change the current one.
2. An observation older than the last applied one is stale: recorded, not applied.
3. A duplicate of an applied observation changes nothing.
4. A webhook never moves a terminal state; a fresh poll is the provider's current truth and
   is applied when it differs, flagged as drift.

Providers speak in their own statuses. Each provider module maps its statuses onto a
direction-neutral :class:`Signal` (what the provider says about the number) plus, when the
status implies it, the :class:`Direction` of the operation. :func:`target_state` turns that
into a canonical :class:`State` using the direction of our last request.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from models.alerts.kinds import AlertKind as AlertKind  # re-exported: Effects name it


class State(enum.StrEnum):
    LINK_REQUESTED = "LINK_REQUESTED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    UNLINK_REQUESTED = "UNLINK_REQUESTED"
    UNLINK_PROCESSING = "UNLINK_PROCESSING"
    UNLINKED = "UNLINKED"
    UNLINK_FAILED = "UNLINK_FAILED"


TERMINAL = frozenset({State.COMPLETED, State.FAILED, State.UNLINKED, State.UNLINK_FAILED})
PENDING = frozenset(set(State) - TERMINAL)
#: States in which the provider is working on our request (used for "stuck").
IN_FLIGHT = frozenset({State.PROCESSING, State.UNLINK_PROCESSING})


class Direction(enum.StrEnum):
    LINK = "link"
    UNLINK = "unlink"


class Source(enum.StrEnum):
    WEBHOOK = "webhook"
    POLL = "poll"
    API = "api"
    CLI = "cli"
    SYSTEM = "system"
    #: ``dlcsync adopt``: a link found at the carrier (its listing is a fresh observation).
    ADOPTED = "adopted"


class Signal(enum.StrEnum):
    """What a provider status says about a number, independent of direction."""

    PENDING = "pending"  # an operation is under way
    LINKED = "linked"  # the number is linked and active
    FAILED = "failed"  # the operation failed
    NOT_LINKED = "not_linked"  # the number is not linked (unlinked, or never was)


class Verdict(enum.StrEnum):
    """The outcome of deciding on an observation; also the inbox outcome names."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    IGNORED = "ignored"


#: Allowed transitions (from, to). ``None`` is "no link yet". Drift (a fresh poll) may move
#: any terminal state to any other state; that is checked separately.
TRANSITIONS: frozenset[tuple[State | None, State]] = frozenset(
    {
        (None, State.LINK_REQUESTED),
        (State.LINK_REQUESTED, State.PROCESSING),
        (State.LINK_REQUESTED, State.COMPLETED),
        (State.LINK_REQUESTED, State.FAILED),
        (State.PROCESSING, State.COMPLETED),
        (State.PROCESSING, State.FAILED),
        (State.UNLINK_REQUESTED, State.UNLINK_PROCESSING),
        (State.UNLINK_REQUESTED, State.UNLINKED),
        (State.UNLINK_REQUESTED, State.UNLINK_FAILED),
        (State.UNLINK_PROCESSING, State.UNLINKED),
        (State.UNLINK_PROCESSING, State.UNLINK_FAILED),
    }
    # A new request may start from any state (LINK_REQUESTED again: a move to another campaign).
    | {(s, State.LINK_REQUESTED) for s in State}
    | {(s, State.UNLINK_REQUESTED) for s in State if s is not State.UNLINK_REQUESTED}
)


def is_allowed(from_state: State | None, to_state: State, *, drift: bool = False) -> bool:
    """Whether an applied change is legal. Drift (a fresh poll disagreeing with us) may move
    a link anywhere, even to its own state on another campaign: the provider is the truth."""
    if (from_state, to_state) in TRANSITIONS:
        return True
    return drift and from_state is not None


@dataclass(frozen=True)
class LinkSnapshot:
    """What the state machine needs to know about a link."""

    state: State
    generation: int
    campaign_id: str
    direction: Direction
    #: Time of the last applied observation (provider time when it had one).
    observed_at: datetime
    #: When the current generation was requested; older observations belong to older ones.
    generation_started_at: datetime


@dataclass(frozen=True)
class Observation:
    """One thing a provider told us about a number (callback or poll)."""

    source: Source
    provider_status: str
    observed_at: datetime
    #: ``None`` when the provider status is unknown: never guessed.
    signal: Signal | None
    direction: Direction | None = None
    campaign_id: str | None = None
    #: Known for polls and request answers (the generation they were made for).
    generation: int | None = None
    reason: str | None = None
    #: The provider's own timestamp, when it sent one (kept in the audit row).
    provider_time: datetime | None = None
    #: The provider says this failure is cured by asking once more (a dormant campaign).
    retry_once: bool = False
    #: Per-carrier mapping statuses (Telnyx), e.g. (("tmobile", "ADDED"),); not a state:
    #: ``decide`` ignores it, models.mapping records it.
    carrier_mapping: tuple[tuple[str, str], ...] | None = None

    @property
    def fresh(self) -> bool:
        """A poll (or an adoption's listing) is the provider's current truth."""
        return self.source in (Source.POLL, Source.ADOPTED)


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    to_state: State | None = None
    reason: str | None = None
    drift: bool = False
    alert: AlertKind | None = None
    #: Set when a fresh poll finds the number on another campaign.
    campaign_id: str | None = None


def target_state(signal: Signal, direction: Direction, current: State) -> State | None:
    """The canonical state a signal means for a link whose last request went ``direction``.

    ``None`` means the signal says nothing new about this link (for example "not linked"
    before our link request reached the provider).
    """
    if signal is Signal.PENDING:
        return State.PROCESSING if direction is Direction.LINK else State.UNLINK_PROCESSING
    if signal is Signal.FAILED:
        return State.FAILED if direction is Direction.LINK else State.UNLINK_FAILED
    if signal is Signal.LINKED:
        if direction is Direction.LINK:
            return State.COMPLETED
        # Still linked while our unlink is pending: nothing new. After UNLINKED it is drift.
        return State.COMPLETED if current in TERMINAL else None
    # NOT_LINKED
    if direction is Direction.UNLINK:
        return State.UNLINKED
    if current is State.LINK_REQUESTED:
        return None  # our request has not reached the provider yet
    if current is State.FAILED:
        return None  # a failed link is not linked: consistent
    if current is State.PROCESSING:
        return State.FAILED
    return State.UNLINKED


def decide(link: LinkSnapshot, obs: Observation) -> Decision:
    """Decide what an observation does to a link. Pure: no I/O, no clock."""
    if obs.signal is None:
        return Decision(
            Verdict.IGNORED,
            reason=f"unknown provider status {obs.provider_status!r}",
            alert=AlertKind.UNKNOWN_STATUS,
        )
    if obs.generation is not None and obs.generation != link.generation:
        return Decision(Verdict.IGNORED, reason=f"older generation {obs.generation}")
    if obs.generation is None and obs.observed_at <= link.generation_started_at:
        return Decision(Verdict.IGNORED, reason="observation predates the current request")

    moved_to: str | None = None
    if obs.campaign_id is not None and obs.campaign_id != link.campaign_id:
        if not obs.fresh or obs.signal is Signal.NOT_LINKED:
            return Decision(Verdict.IGNORED, reason=f"about another campaign {obs.campaign_id}")
        moved_to = obs.campaign_id

    direction = link.direction
    if obs.direction is not None and obs.direction is not link.direction:
        if not obs.fresh:
            return Decision(Verdict.IGNORED, reason=f"about an {obs.direction} operation")
        direction = obs.direction

    target = target_state(obs.signal, direction, link.state)
    if target is None:
        return Decision(Verdict.IGNORED, reason=f"{obs.provider_status} says nothing new")
    if target is link.state and moved_to is None:
        return Decision(Verdict.DUPLICATE, reason=f"already {link.state}")
    if obs.observed_at < link.observed_at:
        return Decision(Verdict.STALE, reason="older than the last applied observation")

    drift = False
    if link.state in TERMINAL or moved_to is not None:
        if not obs.fresh:
            return Decision(
                Verdict.IGNORED, reason=f"{link.state} is terminal; a poll will confirm"
            )
        drift = True
    elif not is_allowed(link.state, target):
        if not obs.fresh:
            return Decision(Verdict.IGNORED, reason=f"{link.state} -> {target} not allowed")
        drift = True

    moved = f"moved to campaign {moved_to} at the provider" if moved_to else None
    return Decision(
        Verdict.APPLIED,
        to_state=target,
        reason=obs.reason or moved,
        drift=drift,
        alert=alert_for(target, drift),
        campaign_id=moved_to,
    )


def alert_for(state: State, drift: bool) -> AlertKind | None:
    if drift:
        return AlertKind.DRIFT
    if state is State.FAILED:
        return AlertKind.LINK_FAILED
    if state is State.UNLINK_FAILED:
        return AlertKind.UNLINK_FAILED
    return None


@dataclass(frozen=True)
class Request:
    """What an operator's link or unlink request does to a link."""

    new_generation: bool
    state: State | None = None
    direction: Direction | None = None
    campaign_id: str | None = None
    #: The campaign the number leaves when it moves (Plivo unlinks it first).
    prior_campaign_id: str | None = None
    reason: str | None = None


def request_link(link: LinkSnapshot | None, campaign_id: str) -> Request:
    if link is None:
        return Request(True, State.LINK_REQUESTED, Direction.LINK, campaign_id)
    if link.campaign_id == campaign_id:
        if link.state in (State.LINK_REQUESTED, State.PROCESSING, State.COMPLETED):
            return Request(False, reason=f"already {link.state}")
        return Request(True, State.LINK_REQUESTED, Direction.LINK, campaign_id)
    prior = link.campaign_id if link.state not in (State.UNLINKED, State.FAILED) else None
    return Request(True, State.LINK_REQUESTED, Direction.LINK, campaign_id, prior)


def request_unlink(link: LinkSnapshot) -> Request:
    if link.state in (State.UNLINK_REQUESTED, State.UNLINK_PROCESSING, State.UNLINKED):
        return Request(False, reason=f"already {link.state}")
    return Request(True, State.UNLINK_REQUESTED, Direction.UNLINK, link.campaign_id)
