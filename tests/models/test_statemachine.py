"""Table-driven tests of the pure link state machine (DESIGN §2, models/statemachine.py).

Every expected value below is written out by hand; nothing is derived from the module under
test. Every APPLIED decision is also checked against ``is_allowed(from, to, drift=...)``.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from models.statemachine import (
    PENDING,
    TERMINAL,
    AlertKind,
    Decision,
    Direction,
    LinkSnapshot,
    Observation,
    Signal,
    Source,
    State,
    Verdict,
    decide,
    is_allowed,
    request_link,
    request_unlink,
    target_state,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
# Shorthands for the tables.
LR, PR, CO, FA = State.LINK_REQUESTED, State.PROCESSING, State.COMPLETED, State.FAILED
UR, UP, UL, UF = (
    State.UNLINK_REQUESTED,
    State.UNLINK_PROCESSING,
    State.UNLINKED,
    State.UNLINK_FAILED,
)
LINK, UNLINK = Direction.LINK, Direction.UNLINK
WH, POLL = Source.WEBHOOK, Source.POLL


def t(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def snap(
    state: State,
    direction: Direction | None = None,
    *,
    generation: int = 3,
    campaign: str = "CAMP_A",
    observed: float = 100,
    started: float = 50,
) -> LinkSnapshot:
    if direction is None:
        direction = UNLINK if state in (UR, UP, UL, UF) else LINK
    return LinkSnapshot(
        state=state,
        generation=generation,
        campaign_id=campaign,
        direction=direction,
        observed_at=t(observed),
        generation_started_at=t(started),
    )


def obs(
    signal: Signal | None,
    source: Source = WH,
    *,
    at: float = 200,
    direction: Direction | None = None,
    campaign: str | None = "CAMP_A",
    generation: int | None = None,
    status: str = "STATUS",
    reason: str | None = None,
) -> Observation:
    if source is POLL and generation is None:
        generation = 3
    return Observation(
        source=source,
        provider_status=status,
        observed_at=t(at),
        signal=signal,
        direction=direction,
        campaign_id=campaign,
        generation=generation,
        reason=reason,
    )


def check_allowed(link: LinkSnapshot, d: Decision) -> None:
    if d.verdict is Verdict.APPLIED:
        assert d.to_state is not None
        assert is_allowed(link.state, d.to_state, drift=d.drift), (link.state, d)
    else:
        assert d.to_state is None, d
        assert d.campaign_id is None, d
        assert d.drift is False, d


# --------------------------------------------------------------------------------------
# target_state: every (Signal, Direction, current State), expected written out by hand.
# Columns are the current state in this order:
STATE_ORDER = (LR, PR, CO, FA, UR, UP, UL, UF)
TARGET_TABLE: dict[tuple[Signal, Direction], tuple[State | None, ...]] = {
    #                                LR    PR    CO    FA    UR    UP    UL    UF
    (Signal.PENDING, LINK): (PR, PR, PR, PR, PR, PR, PR, PR),
    (Signal.PENDING, UNLINK): (UP, UP, UP, UP, UP, UP, UP, UP),
    (Signal.FAILED, LINK): (FA, FA, FA, FA, FA, FA, FA, FA),
    (Signal.FAILED, UNLINK): (UF, UF, UF, UF, UF, UF, UF, UF),
    (Signal.LINKED, LINK): (CO, CO, CO, CO, CO, CO, CO, CO),
    (Signal.LINKED, UNLINK): (None, None, CO, CO, None, None, CO, CO),
    (Signal.NOT_LINKED, LINK): (None, FA, UL, None, UL, UL, UL, UL),
    (Signal.NOT_LINKED, UNLINK): (UL, UL, UL, UL, UL, UL, UL, UL),
}

TARGET_CASES = [
    pytest.param(sig, direction, current, expected, id=f"{sig}-{direction}-{current}")
    for (sig, direction), row in TARGET_TABLE.items()
    for current, expected in zip(STATE_ORDER, row, strict=True)
]


def test_target_table_is_complete() -> None:
    assert set(STATE_ORDER) == set(State)
    assert set(TARGET_TABLE) == set(itertools.product(Signal, Direction))
    assert len(TARGET_CASES) == len(Signal) * len(Direction) * len(State)


@pytest.mark.parametrize(("signal", "direction", "current", "expected"), TARGET_CASES)
def test_target_state(
    signal: Signal, direction: Direction, current: State, expected: State | None
) -> None:
    assert target_state(signal, direction, current) is expected


# --------------------------------------------------------------------------------------
# is_allowed spot checks (hand-written).
@pytest.mark.parametrize(
    ("frm", "to", "drift", "expected"),
    [
        (None, LR, False, True),
        (None, PR, False, False),
        (LR, PR, False, True),
        (LR, CO, False, True),
        (LR, FA, False, True),
        (PR, CO, False, True),
        (PR, FA, False, True),
        (PR, LR, False, True),
        (CO, LR, False, True),
        (FA, LR, False, True),
        (UL, LR, False, True),
        (UR, UP, False, True),
        (UR, UL, False, True),
        (UP, UL, False, True),
        (UP, UF, False, True),
        (CO, UR, False, True),
        (UR, UR, False, False),
        (LR, LR, False, True),  # a move to another campaign: new generation
        (CO, PR, False, False),
        (CO, UL, False, False),
        (UL, CO, False, False),
        (PR, UL, False, False),
        (CO, PR, True, True),
        (CO, UL, True, True),
        (UL, CO, True, True),
        (FA, CO, True, True),
        (UF, UL, True, True),
        (CO, CO, True, True),  # drift to another campaign in the same state
    ],
)
def test_is_allowed(frm: State | None, to: State, drift: bool, expected: bool) -> None:
    assert is_allowed(frm, to, drift=drift) is expected


# --------------------------------------------------------------------------------------
# decide: every rule of DESIGN §2. Each case: (link, observation, expected fields).
# expected = (verdict, to_state, drift, alert, campaign_id)
A = AlertKind
DECIDE_CASES = [
    # ---- happy-path progressions by webhook (no drift) -------------------------------
    ("wh-accepted", snap(LR), obs(Signal.PENDING), (Verdict.APPLIED, PR, False, None, None)),
    ("wh-accepted-dir", snap(LR), obs(Signal.PENDING, direction=LINK), ("applied", PR)),
    ("wh-linked-fast", snap(LR), obs(Signal.LINKED), (Verdict.APPLIED, CO, False, None, None)),
    ("wh-linked", snap(PR), obs(Signal.LINKED), (Verdict.APPLIED, CO, False, None, None)),
    (
        "wh-link-failed",
        snap(PR),
        obs(Signal.FAILED, reason="brand rejected"),
        (Verdict.APPLIED, FA, False, A.LINK_FAILED, None),
    ),
    ("wh-req-failed", snap(LR), obs(Signal.FAILED), (Verdict.APPLIED, FA, False, A.LINK_FAILED)),
    ("wh-not-found-proc", snap(PR), obs(Signal.NOT_LINKED), ("applied", FA, False, A.LINK_FAILED)),
    ("wh-unlink-accepted", snap(UR), obs(Signal.PENDING), (Verdict.APPLIED, UP, False, None)),
    ("wh-unlinked-fast", snap(UR), obs(Signal.NOT_LINKED), (Verdict.APPLIED, UL, False, None)),
    ("wh-unlinked", snap(UP), obs(Signal.NOT_LINKED), (Verdict.APPLIED, UL, False, None, None)),
    (
        "wh-unlink-failed",
        snap(UP),
        obs(Signal.FAILED, direction=UNLINK),
        (Verdict.APPLIED, UF, False, A.UNLINK_FAILED, None),
    ),
    ("wh-ureq-failed", snap(UR), obs(Signal.FAILED), (Verdict.APPLIED, UF, False, A.UNLINK_FAILED)),
    # ---- signals that say nothing new -------------------------------------------------
    ("not-linked-before-accept", snap(LR), obs(Signal.NOT_LINKED), (Verdict.IGNORED,)),
    ("poll-not-linked-before-accept", snap(LR), obs(Signal.NOT_LINKED, POLL), (Verdict.IGNORED,)),
    ("still-linked-while-unlinking", snap(UR), obs(Signal.LINKED), (Verdict.IGNORED,)),
    ("poll-still-linked-unlinking", snap(UP), obs(Signal.LINKED, POLL), (Verdict.IGNORED,)),
    ("failed-not-linked-consistent", snap(FA), obs(Signal.NOT_LINKED, POLL), (Verdict.IGNORED,)),
    # ---- rule 1: generations and other campaigns -------------------------------------
    ("r1-poll-older-gen", snap(PR), obs(Signal.LINKED, POLL, generation=2), (Verdict.IGNORED,)),
    ("r1-poll-gen-1", snap(LR), obs(Signal.FAILED, POLL, generation=1), (Verdict.IGNORED,)),
    ("r1-poll-other-gen", snap(PR), obs(Signal.FAILED, POLL, generation=4), (Verdict.IGNORED,)),
    (
        "r1-poll-old-gen-terminal",
        snap(CO),
        obs(Signal.NOT_LINKED, POLL, generation=2),
        ("ignored",),
    ),
    ("r1-wh-before-request", snap(LR), obs(Signal.FAILED, at=49), (Verdict.IGNORED,)),
    (
        "r1-wh-before-request-unlink",
        snap(UR, observed=50),
        obs(Signal.LINKED, at=10, direction=LINK),
        (Verdict.IGNORED,),
    ),
    (
        "r1-wh-before-request-dup",
        snap(PR),
        obs(Signal.PENDING, at=1),
        (Verdict.IGNORED,),
    ),
    (
        "r1-wh-other-campaign",
        snap(PR),
        obs(Signal.LINKED, campaign="CAMP_B"),
        (Verdict.IGNORED,),
    ),
    (
        "r1-wh-other-campaign-failed",
        snap(LR),
        obs(Signal.FAILED, campaign="CAMP_B"),
        (Verdict.IGNORED,),
    ),
    (
        "r1-wh-other-campaign-terminal",
        snap(UL),
        obs(Signal.LINKED, campaign="CAMP_B"),
        (Verdict.IGNORED,),
    ),
    (
        "r1-poll-other-campaign-not-linked",
        snap(CO),
        obs(Signal.NOT_LINKED, POLL, campaign="CAMP_B"),
        (Verdict.IGNORED,),
    ),
    (
        "r1-poll-old-gen-other-campaign",
        snap(UL),
        obs(Signal.LINKED, POLL, campaign="CAMP_B", generation=2),
        (Verdict.IGNORED,),
    ),
    (
        "r1-wh-other-direction",
        snap(PR),
        obs(Signal.FAILED, direction=UNLINK),
        (Verdict.IGNORED,),
    ),
    (
        "r1-wh-other-direction-unlink",
        snap(UP),
        obs(Signal.PENDING, direction=LINK),
        (Verdict.IGNORED,),
    ),
    ("r1-wh-no-campaign-ok", snap(PR), obs(Signal.LINKED, campaign=None), ("applied", CO)),
    # A webhook observed at the very instant of the request cannot be about it.
    (
        "r1-wh-at-request-time",
        snap(LR, observed=50),
        obs(Signal.PENDING, at=50),
        (Verdict.IGNORED,),
    ),
    # ---- fresh poll finds the number on another campaign (drift, campaign moves) ------
    (
        "poll-other-campaign-linked",
        snap(UL),
        obs(Signal.LINKED, POLL, campaign="CAMP_B"),
        (Verdict.APPLIED, CO, True, A.DRIFT, "CAMP_B"),
    ),
    (
        "poll-other-campaign-linked-from-failed",
        snap(FA),
        obs(Signal.LINKED, POLL, campaign="CAMP_B"),
        (Verdict.APPLIED, CO, True, A.DRIFT, "CAMP_B"),
    ),
    # ---- rule 2: stale -----------------------------------------------------------------
    ("r2-wh-stale", snap(PR), obs(Signal.LINKED, at=99), (Verdict.STALE,)),
    ("r2-wh-stale-failed", snap(LR), obs(Signal.FAILED, at=60), (Verdict.STALE,)),
    ("r2-poll-stale", snap(PR), obs(Signal.FAILED, POLL, at=99.5), (Verdict.STALE,)),
    ("r2-poll-stale-terminal", snap(CO), obs(Signal.NOT_LINKED, POLL, at=99), (Verdict.STALE,)),
    ("r2-unlink-stale", snap(UP), obs(Signal.NOT_LINKED, at=70), (Verdict.STALE,)),
    ("r2-same-time-not-stale", snap(PR), obs(Signal.LINKED, at=100), ("applied", CO)),
    ("r2-stale-dup-is-dup", snap(PR), obs(Signal.PENDING, at=60), (Verdict.DUPLICATE,)),
    # ---- rule 3: duplicates --------------------------------------------------------------
    ("r3-wh-dup-processing", snap(PR), obs(Signal.PENDING), (Verdict.DUPLICATE,)),
    ("r3-wh-dup-completed", snap(CO), obs(Signal.LINKED), (Verdict.DUPLICATE,)),
    ("r3-poll-dup-completed", snap(CO), obs(Signal.LINKED, POLL), (Verdict.DUPLICATE,)),
    ("r3-wh-dup-failed", snap(FA), obs(Signal.FAILED), (Verdict.DUPLICATE,)),
    ("r3-poll-dup-unlinked", snap(UL), obs(Signal.NOT_LINKED, POLL), (Verdict.DUPLICATE,)),
    ("r3-wh-dup-unlink-failed", snap(UF), obs(Signal.FAILED), (Verdict.DUPLICATE,)),
    ("r3-dup-unlink-proc", snap(UP), obs(Signal.PENDING, direction=UNLINK), (Verdict.DUPLICATE,)),
    ("r3-wh-dup-no-campaign", snap(CO), obs(Signal.LINKED, campaign=None), (Verdict.DUPLICATE,)),
    # ---- rule 4: a webhook never moves a terminal state ---------------------------------
    ("r4-wh-co-not-linked", snap(CO), obs(Signal.NOT_LINKED), (Verdict.IGNORED,)),
    ("r4-wh-co-pending", snap(CO), obs(Signal.PENDING), (Verdict.IGNORED,)),
    ("r4-wh-co-failed", snap(CO), obs(Signal.FAILED), (Verdict.IGNORED,)),
    ("r4-wh-fa-linked", snap(FA), obs(Signal.LINKED), (Verdict.IGNORED,)),
    ("r4-wh-fa-pending", snap(FA), obs(Signal.PENDING), (Verdict.IGNORED,)),
    ("r4-wh-ul-linked", snap(UL), obs(Signal.LINKED), (Verdict.IGNORED,)),
    ("r4-wh-ul-pending", snap(UL), obs(Signal.PENDING), (Verdict.IGNORED,)),
    ("r4-wh-ul-failed", snap(UL), obs(Signal.FAILED), (Verdict.IGNORED,)),
    ("r4-wh-uf-not-linked", snap(UF), obs(Signal.NOT_LINKED), (Verdict.IGNORED,)),
    ("r4-wh-uf-linked", snap(UF), obs(Signal.LINKED), (Verdict.IGNORED,)),
    ("r4-wh-uf-pending", snap(UF), obs(Signal.PENDING, direction=UNLINK), (Verdict.IGNORED,)),
    # ... while a fresh poll applies the provider's truth, flagged and alerted as drift.
    (
        "r4-poll-co-not-linked",
        snap(CO),
        obs(Signal.NOT_LINKED, POLL),
        ("applied", UL, True, A.DRIFT),
    ),
    ("r4-poll-co-pending", snap(CO), obs(Signal.PENDING, POLL), ("applied", PR, True, A.DRIFT)),
    ("r4-poll-co-failed", snap(CO), obs(Signal.FAILED, POLL), ("applied", FA, True, A.DRIFT)),
    ("r4-poll-fa-linked", snap(FA), obs(Signal.LINKED, POLL), ("applied", CO, True, A.DRIFT)),
    ("r4-poll-fa-pending", snap(FA), obs(Signal.PENDING, POLL), ("applied", PR, True, A.DRIFT)),
    ("r4-poll-ul-linked", snap(UL), obs(Signal.LINKED, POLL), ("applied", CO, True, A.DRIFT)),
    ("r4-poll-ul-pending", snap(UL), obs(Signal.PENDING, POLL), ("applied", UP, True, A.DRIFT)),
    ("r4-poll-ul-failed", snap(UL), obs(Signal.FAILED, POLL), ("applied", UF, True, A.DRIFT)),
    ("r4-poll-uf-unlinked", snap(UF), obs(Signal.NOT_LINKED, POLL), ("applied", UL, True, A.DRIFT)),
    ("r4-poll-uf-linked", snap(UF), obs(Signal.LINKED, POLL), ("applied", CO, True, A.DRIFT)),
    (
        "r4-poll-co-unassign-pending",
        snap(CO),
        obs(Signal.PENDING, POLL, direction=UNLINK),
        ("applied", UP, True, A.DRIFT),
    ),
    (
        "r4-poll-ul-assign-pending",
        snap(UL),
        obs(Signal.PENDING, POLL, direction=LINK),
        ("applied", PR, True, A.DRIFT),
    ),
    # A fresh poll of pending states follows the ordinary transitions (no drift).
    ("poll-lr-pending", snap(LR), obs(Signal.PENDING, POLL), ("applied", PR, False, None)),
    ("poll-pr-linked", snap(PR), obs(Signal.LINKED, POLL), ("applied", CO, False, None)),
    ("poll-pr-failed", snap(PR), obs(Signal.FAILED, POLL), ("applied", FA, False, A.LINK_FAILED)),
    ("poll-ur-unlinked", snap(UR), obs(Signal.NOT_LINKED, POLL), ("applied", UL, False, None)),
    ("poll-up-failed", snap(UP), obs(Signal.FAILED, POLL), ("applied", UF, False, A.UNLINK_FAILED)),
    # ---- unknown provider status: changes nothing, alerts --------------------------------
    ("unknown-wh", snap(PR), obs(None, status="WEIRD"), ("ignored", None, False, A.UNKNOWN_STATUS)),
    ("unknown-poll", snap(CO), obs(None, POLL), ("ignored", None, False, A.UNKNOWN_STATUS)),
    ("unknown-stale", snap(LR), obs(None, at=1), ("ignored", None, False, A.UNKNOWN_STATUS)),
    (
        "unknown-old-gen",
        snap(UP),
        obs(None, POLL, generation=1),
        ("ignored", None, False, A.UNKNOWN_STATUS),
    ),
    (
        "unknown-other-campaign",
        snap(UF),
        obs(None, campaign="CAMP_Z"),
        ("ignored", None, False, A.UNKNOWN_STATUS),
    ),
]


@pytest.mark.parametrize(
    ("link", "observation", "expected"),
    [pytest.param(link, o, exp, id=name) for name, link, o, exp in DECIDE_CASES],
)
def test_decide(link: LinkSnapshot, observation: Observation, expected: tuple) -> None:
    d = decide(link, observation)
    defaults = (None, None, False, None, None)
    verdict, to_state, drift, alert, campaign = (*expected, *defaults[len(expected) :])
    assert d.verdict == Verdict(verdict)
    if d.verdict is Verdict.APPLIED:
        assert d.to_state is to_state
        assert d.campaign_id == campaign
    assert d.drift is drift
    if d.verdict is Verdict.APPLIED or alert is not None:
        assert d.alert is alert
    else:
        assert d.alert is None
    check_allowed(link, d)


def test_unknown_status_reason_names_the_status() -> None:
    d = decide(snap(PR), obs(None, status="SOMETHING_NEW"))
    assert d.alert is AlertKind.UNKNOWN_STATUS
    assert d.reason is not None and "SOMETHING_NEW" in d.reason


def test_failure_reason_is_kept() -> None:
    d = decide(snap(PR), obs(Signal.FAILED, reason="TCR rejected the campaign"))
    assert d.verdict is Verdict.APPLIED
    assert d.reason == "TCR rejected the campaign"
    assert d.alert is AlertKind.LINK_FAILED


def test_non_applied_decisions_explain_why() -> None:
    for _name, link, o, _exp in DECIDE_CASES:
        d = decide(link, o)
        if d.verdict is not Verdict.APPLIED:
            assert d.reason, (_name, d)


# --------------------------------------------------------------------------------------
# Rules 2-3 end to end: apply a decision the way the database does, then redeliver.
def apply(link: LinkSnapshot, o: Observation, d: Decision) -> LinkSnapshot:
    if d.verdict is not Verdict.APPLIED:
        return link
    assert d.to_state is not None
    return replace(
        link,
        state=d.to_state,
        observed_at=max(link.observed_at, o.observed_at),
        campaign_id=d.campaign_id or link.campaign_id,
    )


@pytest.mark.parametrize(
    ("name", "link", "observation", "expected"),
    [c for c in DECIDE_CASES if c[3][0] in (Verdict.APPLIED, "applied")],
    ids=[c[0] for c in DECIDE_CASES if c[3][0] in (Verdict.APPLIED, "applied")],
)
def test_redelivery_of_an_applied_observation_changes_nothing(
    name: str, link: LinkSnapshot, observation: Observation, expected: tuple
) -> None:
    first = decide(link, observation)
    assert first.verdict is Verdict.APPLIED
    after = apply(link, observation, first)
    again = decide(after, observation)
    assert again.verdict is not Verdict.APPLIED, (name, again)
    assert apply(after, observation, again) == after


def test_late_webhook_after_poll_is_stale_not_applied() -> None:
    link = snap(PR, observed=100)
    poll = obs(Signal.LINKED, POLL, at=300)
    link = apply(link, poll, decide(link, poll))
    assert link.state is CO and link.observed_at == t(300)
    late = obs(Signal.FAILED, at=250)  # happened before what we already applied
    assert decide(link, late).verdict in (Verdict.STALE, Verdict.IGNORED)
    late_pending = decide(snap(LR, observed=300), obs(Signal.PENDING, at=250))
    assert late_pending.verdict is Verdict.STALE


# --------------------------------------------------------------------------------------
# Exhaustive property check over a grid of inputs: rules 1, 2 and 4 and the transition
# table, for every state / signal / direction / source / campaign / timing combination.
def _grid() -> list[tuple[LinkSnapshot, Observation]]:
    cases = []
    for state, link_dir, sig, obs_dir, source, campaign, gen, at in itertools.product(
        State,
        Direction,
        [*Signal, None],
        [None, *Direction],
        [WH, POLL],
        [None, "CAMP_A", "CAMP_B"],
        [None, 2, 3],
        [10, 50, 99, 100, 200],
    ):
        if source is WH and gen is not None:
            continue
        link = snap(state, link_dir, observed=100, started=50)
        o = obs(sig, source, at=at, direction=obs_dir, campaign=campaign, generation=gen)
        if source is POLL and gen is None:
            o = replace(o, generation=None)
        cases.append((link, o))
    return cases


GRID = _grid()


def test_grid_rules() -> None:
    for link, o in GRID:
        d = decide(link, o)
        applied = d.verdict is Verdict.APPLIED
        where = (link, o, d)
        if o.signal is None:
            assert d.verdict is Verdict.IGNORED and d.alert is AlertKind.UNKNOWN_STATUS, where
            continue
        # Rule 1: another generation never changes anything.
        if o.generation is not None and o.generation != link.generation:
            assert not applied, where
        if o.generation is None and o.observed_at < link.generation_started_at:
            assert not applied, where
        # Rule 1: a webhook about another campaign never changes anything.
        if o.source is WH and o.campaign_id not in (None, link.campaign_id):
            assert not applied, where
        if o.campaign_id not in (None, link.campaign_id) and o.signal is Signal.NOT_LINKED:
            assert not applied, where
        # Rule 2: stale never applies.
        if o.observed_at < link.observed_at:
            assert not applied, where
        # Rule 4: webhooks never move a terminal state; webhook changes are never drift.
        if o.source is WH:
            assert not d.drift, where
            if link.state in TERMINAL:
                assert not applied, where
            if applied:
                assert is_allowed(link.state, d.to_state), where
        # Drift is only ever flagged for fresh polls, and always alerted as drift.
        if applied and d.drift:
            assert o.fresh and d.alert is AlertKind.DRIFT, where
        if applied and link.state in TERMINAL:
            assert d.drift, where
        # A poll from a terminal state that changes something is drift.
        if applied and not d.drift:
            assert d.alert is {FA: AlertKind.LINK_FAILED, UF: AlertKind.UNLINK_FAILED}.get(
                d.to_state
            ), where
        # Rule 3: a decision that does not change the state (or campaign) is not APPLIED.
        if applied:
            assert d.to_state is not link.state or d.campaign_id not in (None, link.campaign_id)
        if not applied:
            assert d.to_state is None and not d.drift and d.campaign_id is None, where


def _applied_poll_violations() -> list[tuple[LinkSnapshot, Observation, Decision]]:
    bad = []
    for link, o in GRID:
        d = decide(link, o)
        if d.verdict is Verdict.APPLIED and not is_allowed(link.state, d.to_state, drift=d.drift):
            bad.append((link, o, d))
    return bad


def test_every_applied_webhook_decision_is_an_allowed_transition() -> None:
    assert [v for v in _applied_poll_violations() if v[1].source is WH] == []


def test_every_applied_poll_decision_is_an_allowed_transition() -> None:
    assert _applied_poll_violations() == []


def test_poll_drift_from_pending_state_is_allowed() -> None:
    link = snap(LR)
    d = decide(link, obs(Signal.PENDING, POLL, direction=UNLINK))
    assert d.verdict is Verdict.APPLIED and d.to_state is UP and d.drift
    assert is_allowed(link.state, d.to_state, drift=d.drift)


def test_poll_campaign_move_keeping_the_state_is_allowed() -> None:
    link = snap(CO)
    d = decide(link, obs(Signal.LINKED, POLL, campaign="CAMP_B"))
    assert (d.verdict, d.to_state, d.campaign_id, d.drift) == (Verdict.APPLIED, CO, "CAMP_B", True)
    assert is_allowed(link.state, d.to_state, drift=d.drift)


def test_redelivered_old_generation_webhook_at_generation_start_is_ignored() -> None:
    # Generation 2 failed at provider time 500 (our clock was at 490: provider is ahead).
    failed = obs(Signal.FAILED, at=500, direction=LINK)
    link = snap(PR, generation=2, observed=400, started=300)
    link = apply(link, failed, decide(link, failed))
    assert link.state is FA
    # The operator relinks at our time 495: links.py starts gen 3 at max(495, 500) = 500.
    req = request_link(link, link.campaign_id)
    assert req.new_generation
    started = max(t(495), link.observed_at)
    link = replace(
        link,
        state=req.state,
        generation=3,
        direction=req.direction,
        observed_at=started,
        generation_started_at=started,
    )
    # The provider redelivers the generation-2 FAILED callback.
    assert decide(link, failed).verdict is not Verdict.APPLIED


# --------------------------------------------------------------------------------------
# request_link / request_unlink
NEW, SAME = True, False
LINK_REQUEST_CASES = [
    # (current state, same campaign?, new generation?, prior campaign)
    (LR, True, SAME, None),
    (PR, True, SAME, None),
    (CO, True, SAME, None),
    (FA, True, NEW, None),  # relink after a failure
    (UR, True, NEW, None),
    (UP, True, NEW, None),
    (UL, True, NEW, None),
    (UF, True, NEW, None),
    # move to another campaign: always a new generation; the number leaves the old campaign
    (LR, False, NEW, "CAMP_A"),
    (PR, False, NEW, "CAMP_A"),
    (CO, False, NEW, "CAMP_A"),
    (FA, False, NEW, None),  # never linked on A
    (UR, False, NEW, "CAMP_A"),
    (UP, False, NEW, "CAMP_A"),
    (UL, False, NEW, None),  # not linked on A any more
    (UF, False, NEW, "CAMP_A"),
]


@pytest.mark.parametrize(
    ("state", "same", "new_generation", "prior"),
    [pytest.param(*c, id=f"{c[0]}-{'same' if c[1] else 'move'}") for c in LINK_REQUEST_CASES],
)
def test_request_link(state: State, same: bool, new_generation: bool, prior: str | None) -> None:
    link = snap(state)
    campaign = "CAMP_A" if same else "CAMP_B"
    r = request_link(link, campaign)
    assert r.new_generation is new_generation
    if new_generation:
        assert (r.state, r.direction, r.campaign_id, r.prior_campaign_id) == (
            LR,
            LINK,
            campaign,
            prior,
        )
    else:
        assert r.state is None and r.direction is None and r.campaign_id is None
        assert r.reason and state in r.reason


def test_request_link_for_a_new_number() -> None:
    r = request_link(None, "CAMP_A")
    assert (r.new_generation, r.state, r.direction, r.campaign_id, r.prior_campaign_id) == (
        True,
        LR,
        LINK,
        "CAMP_A",
        None,
    )
    assert is_allowed(None, r.state)


@pytest.mark.parametrize(
    ("state", "new_generation"),
    [
        (LR, NEW),
        (PR, NEW),
        (CO, NEW),
        (FA, NEW),
        (UR, SAME),
        (UP, SAME),
        (UL, SAME),  # unlink of an unlinked number: no-op
        (UF, NEW),  # retry a failed unlink
    ],
)
def test_request_unlink(state: State, new_generation: bool) -> None:
    r = request_unlink(snap(state))
    assert r.new_generation is new_generation
    if new_generation:
        assert (r.state, r.direction, r.campaign_id, r.prior_campaign_id) == (
            UR,
            UNLINK,
            "CAMP_A",
            None,
        )
        assert is_allowed(state, r.state)
    else:
        assert r.state is None and r.reason and state in r.reason


def test_requests_are_idempotent() -> None:
    for state in State:
        link = snap(state)
        r = request_link(link, "CAMP_A")
        if r.new_generation:
            again = replace(link, state=r.state, direction=r.direction, generation=4)
            assert request_link(again, "CAMP_A").new_generation is False
        u = request_unlink(link)
        if u.new_generation:
            again = replace(link, state=u.state, direction=u.direction, generation=4)
            assert request_unlink(again).new_generation is False


@pytest.mark.parametrize("state", sorted(set(State) - {LR}))
def test_new_link_request_transitions_are_allowed(state: State) -> None:
    for campaign in ("CAMP_A", "CAMP_B"):
        r = request_link(snap(state), campaign)
        if r.new_generation:
            assert is_allowed(state, r.state), (state, campaign)


def test_move_while_link_requested_is_an_allowed_transition() -> None:
    r = request_link(snap(LR), "CAMP_B")
    assert r.new_generation
    assert is_allowed(LR, r.state)


def test_state_sets() -> None:
    assert {CO, FA, UL, UF} == TERMINAL
    assert {LR, PR, UR, UP} == PENDING
