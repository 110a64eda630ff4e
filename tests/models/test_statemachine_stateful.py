"""Hypothesis stateful test of the link state machine (DESIGN §2 rules 1-4).

One number at one provider. The model keeps the *carrier truth* (what the provider really has
for the current generation), lets the operator start generations through ``request_link`` /
``request_unlink``, lets the carrier progress (and occasionally revert) the truth, and delivers
observations the ugly way real providers do: webhooks of the current truth, duplicated,
reordered, late, from older generations, about other campaigns, with unknown statuses,
interleaved with fresh polls. Each decision is applied to the snapshot the way the database
applies it (``models/links.py``), and the rules are checked after every step.

The module under test is looked up through ``sm`` at call time, so a mutated copy can be
substituted in ``sys.modules["models.statemachine"]`` to check that this test catches it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import models.statemachine as sm
from models.statemachine import (
    TERMINAL,
    Direction,
    LinkSnapshot,
    Observation,
    Signal,
    Source,
    State,
    Verdict,
)

T0 = datetime(2024, 5, 1, tzinfo=UTC)
CAMPAIGNS = ("CAMP_A", "CAMP_B", "CAMP_C")


def at(tick: int) -> datetime:
    return T0 + timedelta(seconds=tick)


@dataclass(frozen=True)
class Truth:
    """What the carrier really has for the current generation."""

    generation: int
    op: Direction
    campaign: str
    #: requested (provider has not accepted yet), pending, done, failed; and, after a carrier
    #: side change (drift), gone (number not linked) or appeared (linked on ``campaign``).
    phase: str
    changed_at: int


# Provider status strings, Telnyx-like (direction in the status) and Plivo-like (none).
STATUS = {
    ("pending", Direction.LINK): ("PENDING_ASSIGNMENT", "PROCESSING"),
    ("pending", Direction.UNLINK): ("PENDING_UNASSIGNMENT", "PROCESSING"),
    ("failed", Direction.LINK): ("FAILED_ASSIGNMENT", "FAILED"),
    ("failed", Direction.UNLINK): ("FAILED_UNASSIGNMENT", "FAILED"),
}


def report(truth: Truth, telnyx: bool) -> tuple[Signal, Direction | None, str | None, str]:
    """(signal, direction hint, campaign, provider status) the provider shows for the truth."""
    hint = truth.op if telnyx else None
    i = 0 if telnyx else 1
    if truth.phase == "pending":
        return Signal.PENDING, hint, truth.campaign, STATUS["pending", truth.op][i]
    if truth.phase == "failed":
        return Signal.FAILED, hint, truth.campaign, STATUS["failed", truth.op][i]
    if truth.phase == "done" and truth.op is Direction.LINK:
        return Signal.LINKED, None, truth.campaign, ("ASSIGNED", "COMPLETED")[i]
    if truth.phase == "appeared":
        return Signal.LINKED, None, truth.campaign, ("ASSIGNED", "COMPLETED")[i]
    # unlink done, or gone: the provider does not know the number any more
    return Signal.NOT_LINKED, None, None, "NOT_FOUND"


def canonical(truth: Truth) -> State:
    """The canonical state of the truth, written out by hand."""
    link = truth.op is Direction.LINK
    return {
        "requested": State.LINK_REQUESTED if link else State.UNLINK_REQUESTED,
        "pending": State.PROCESSING if link else State.UNLINK_PROCESSING,
        "done": State.COMPLETED if link else State.UNLINKED,
        "failed": State.FAILED if link else State.UNLINK_FAILED,
        "gone": State.UNLINKED,
        "appeared": State.COMPLETED,
    }[truth.phase]


def tolerated(truth: Truth, before: State) -> set[State]:
    """States a poll may leave in place because the provider's answer is ambiguous.

    - "not linked" during a link: it may mean our request has not reached the provider yet
      (LINK_REQUESTED stays) or that the link did not happen (PROCESSING becomes / FAILED
      stays FAILED). Only after COMPLETED is it unambiguous (UNLINKED).
    - "linked" during an unlink: it may mean our unlink has not happened yet.
    """
    if truth.phase == "gone" and truth.op is Direction.LINK:
        stays = {before} & {State.LINK_REQUESTED, State.FAILED}
        return stays | ({State.FAILED} if before is State.PROCESSING else set())
    if truth.phase == "appeared" and truth.op is Direction.UNLINK:
        return {before} & {State.UNLINK_REQUESTED, State.UNLINK_PROCESSING}
    return set()


class LinkMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = 0
        self.link: LinkSnapshot | None = None
        self.truth: Truth | None = None
        self.telnyx = False
        self.expected_generation = 0
        #: every webhook the provider ever sent, with the generation it belongs to
        self.sent: list[tuple[Observation, int]] = []
        #: every poll answer ever fetched (for late delivery), with its generation
        self.polls: list[tuple[Observation, int]] = []
        self.applied: set[Observation] = set()
        self.violations: list[str] = []

    # ------------------------------------------------------------------ helpers
    def tick(self) -> int:
        self.clock += 1
        return self.clock

    def snapshot(self) -> LinkSnapshot:
        assert self.link is not None
        return self.link

    def start_generation(self, req: sm.Request) -> None:
        before = self.snapshot()
        if not req.new_generation:
            assert req.state is None, req
            return
        now = self.tick()
        started = max(at(now), before.observed_at)  # as models/links.py does
        assert req.state is not None and req.direction is not None
        assert req.campaign_id is not None
        self.link = replace(
            before,
            state=req.state,
            generation=before.generation + 1,
            direction=req.direction,
            campaign_id=req.campaign_id,
            observed_at=started,
            generation_started_at=started,
        )
        self.expected_generation += 1
        self.truth = Truth(self.link.generation, req.direction, req.campaign_id, "requested", now)

    def set_truth(self, phase: str, campaign: str | None = None) -> None:
        assert self.truth is not None
        self.truth = replace(
            self.truth,
            phase=phase,
            campaign=campaign or self.truth.campaign,
            changed_at=self.tick(),
        )
        # The provider sends a callback for every change (it may or may not arrive).
        self.sent.append((self.webhook_of_truth(), self.truth.generation))

    def webhook_of_truth(self) -> Observation:
        assert self.truth is not None
        signal, hint, campaign, status = report(self.truth, self.telnyx)
        return Observation(
            source=Source.WEBHOOK,
            provider_status=status,
            observed_at=at(self.truth.changed_at),
            signal=signal,
            direction=hint,
            campaign_id=campaign,
        )

    def poll_of_truth(self) -> Observation:
        assert self.truth is not None
        signal, hint, campaign, status = report(self.truth, self.telnyx)
        return Observation(
            source=Source.POLL,
            provider_status=status,
            observed_at=at(self.tick()),
            signal=signal,
            direction=hint,
            campaign_id=campaign,
            generation=self.snapshot().generation,
        )

    def deliver(self, obs: Observation, *, older_generation: bool = False) -> sm.Decision:
        """Decide, check the per-observation rules, and apply like the database does."""
        before = self.snapshot()
        d = sm.decide(before, obs)
        applied = d.verdict is Verdict.APPLIED
        where = f"{before} + {obs} -> {d}"
        if applied:
            assert d.to_state is not None, where
            # (a) every applied change is an allowed transition
            ok = sm.is_allowed(before.state, d.to_state, drift=d.drift)
            assert ok, f"(a) transition not allowed: {where}"
            # drift only from fresh polls, always alerted as drift
            if d.drift:
                assert obs.fresh and d.alert is sm.AlertKind.DRIFT, where
            elif d.to_state is State.FAILED:
                assert d.alert is sm.AlertKind.LINK_FAILED, where
            elif d.to_state is State.UNLINK_FAILED:
                assert d.alert is sm.AlertKind.UNLINK_FAILED, where
            else:
                assert d.alert is None, where
            # (b) a webhook never moves a terminal state
            assert not (obs.source is Source.WEBHOOK and before.state in TERMINAL), (
                f"(b) webhook moved a terminal state: {where}"
            )
            # (c) older generations and other campaigns never change anything
            assert not older_generation, f"(c) older generation applied: {where}"
            assert obs.generation in (None, before.generation), f"(c) {where}"
            assert obs.generation is not None or obs.observed_at >= before.generation_started_at
            if obs.source is Source.WEBHOOK:
                assert obs.campaign_id in (None, before.campaign_id), f"(c) campaign: {where}"
            # (d) a stale observation never applies
            assert obs.observed_at >= before.observed_at, f"(d) stale applied: {where}"
            # (e) the same observation never applies twice (rule 3)
            assert obs not in self.applied, f"(e) applied twice: {where}"
            # an applied change changes something
            assert d.to_state is not before.state or d.campaign_id not in (
                None,
                before.campaign_id,
            ), f"(3) no-op applied: {where}"
            self.applied.add(obs)
            self.link = replace(
                before,
                state=d.to_state,
                observed_at=max(before.observed_at, obs.observed_at),
                campaign_id=d.campaign_id or before.campaign_id,
            )
        else:
            assert d.to_state is None and d.campaign_id is None and not d.drift, where
            if obs.signal is None:
                assert d.verdict is Verdict.IGNORED, where
                assert d.alert is sm.AlertKind.UNKNOWN_STATUS, where
        return d

    # ------------------------------------------------------------------ setup
    @initialize(campaign=st.sampled_from(CAMPAIGNS), telnyx=st.booleans())
    def first_request(self, campaign: str, telnyx: bool) -> None:
        self.telnyx = telnyx
        req = sm.request_link(None, campaign)
        assert req.new_generation and req.state is State.LINK_REQUESTED
        now = self.tick()
        self.link = LinkSnapshot(
            state=req.state,
            generation=1,
            campaign_id=campaign,
            direction=Direction.LINK,
            observed_at=at(now),
            generation_started_at=at(now),
        )
        self.expected_generation = 1
        self.truth = Truth(1, Direction.LINK, campaign, "requested", now)

    # ------------------------------------------------------------------ operator
    @rule(campaign=st.sampled_from(CAMPAIGNS))
    def operator_links(self, campaign: str) -> None:
        """Link, relink (same campaign) or move to another campaign."""
        before = self.snapshot()
        req = sm.request_link(before, campaign)
        if before.campaign_id == campaign and before.state in (
            State.LINK_REQUESTED,
            State.PROCESSING,
            State.COMPLETED,
        ):
            assert not req.new_generation, "already requested/linked: no new generation"
        else:
            assert req.new_generation, f"{before.state} -> link {campaign} needs a generation"
            assert req.campaign_id == campaign and req.direction is Direction.LINK
        if req.new_generation and campaign != before.campaign_id:
            expected_prior = (
                None if before.state in (State.UNLINKED, State.FAILED) else before.campaign_id
            )
            assert req.prior_campaign_id == expected_prior
        self.start_generation(req)

    @rule()
    def operator_unlinks(self) -> None:
        before = self.snapshot()
        req = sm.request_unlink(before)
        pending_or_done = (State.UNLINK_REQUESTED, State.UNLINK_PROCESSING, State.UNLINKED)
        assert req.new_generation is (before.state not in pending_or_done)
        self.start_generation(req)

    # ------------------------------------------------------------------ carrier
    @precondition(lambda self: self.truth is not None and self.truth.phase == "requested")
    @rule(phase=st.sampled_from(["pending", "pending", "done", "failed"]))
    def provider_accepts(self, phase: str) -> None:
        self.set_truth(phase)

    @precondition(lambda self: self.truth is not None and self.truth.phase == "pending")
    @rule(phase=st.sampled_from(["done", "done", "failed"]))
    def carrier_finishes(self, phase: str) -> None:
        self.set_truth(phase)

    @precondition(
        lambda self: (
            self.truth is not None and self.truth.phase in ("done", "failed", "gone", "appeared")
        )
    )
    @rule(campaign=st.sampled_from(CAMPAIGNS), disappears=st.booleans())
    def carrier_side_change(self, campaign: str, disappears: bool) -> None:
        """Drift: the number disappears, or (re)appears linked on some (other) campaign."""
        assert self.truth is not None
        linked = canonical(self.truth) is State.COMPLETED
        if linked and (disappears or campaign == self.truth.campaign):
            self.set_truth("gone")
        else:
            self.set_truth("appeared", campaign)

    # ------------------------------------------------------------------ deliveries
    def can_observe(self) -> bool:
        return self.truth is not None and self.truth.phase != "requested"

    @precondition(can_observe)
    @rule()
    def webhook_current(self) -> None:
        self.deliver(self.webhook_of_truth())

    @precondition(can_observe)
    @rule()
    def webhook_twice(self) -> None:
        obs = self.webhook_of_truth()
        self.deliver(obs)
        second = self.deliver(obs)
        assert second.verdict is not Verdict.APPLIED, "(e) second delivery applied"

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def webhook_buffered(self, data: st.DataObject) -> None:
        """A webhook sent earlier arrives now: reordered, duplicated or from an old generation."""
        obs, generation = data.draw(st.sampled_from(self.sent))
        self.deliver(obs, older_generation=generation < self.snapshot().generation)

    @precondition(can_observe)
    @rule(back_ms=st.sampled_from([1, 1, 500, 2000, 5000]))
    def webhook_late(self, back_ms: int) -> None:
        """The current truth, but stamped (just) before the last applied observation."""
        late = self.snapshot().observed_at - timedelta(milliseconds=back_ms)
        obs = replace(self.webhook_of_truth(), observed_at=late)
        d = self.deliver(obs)
        assert d.verdict is not Verdict.APPLIED, "(d) late webhook applied"

    @precondition(can_observe)
    @rule(data=st.data())
    def webhook_other_campaign(self, data: st.DataObject) -> None:
        campaign = data.draw(st.sampled_from([c for c in CAMPAIGNS if c != self.link.campaign_id]))
        obs = replace(self.webhook_of_truth(), campaign_id=campaign, observed_at=at(self.tick()))
        d = self.deliver(obs)
        assert d.verdict is not Verdict.APPLIED, "(c) other-campaign webhook applied"

    @precondition(can_observe)
    @rule(data=st.data())
    def poll_other_campaign_not_linked(self, data: st.DataObject) -> None:
        campaign = data.draw(st.sampled_from([c for c in CAMPAIGNS if c != self.link.campaign_id]))
        obs = replace(
            self.poll_of_truth(),
            signal=Signal.NOT_LINKED,
            direction=None,
            provider_status="NOT_FOUND",
            campaign_id=campaign,
        )
        d = self.deliver(obs)
        assert d.verdict is not Verdict.APPLIED, "(c) not linked on another campaign applied"

    @rule(source=st.sampled_from([Source.WEBHOOK, Source.POLL]), back=st.integers(0, 40))
    def unknown_status(self, source: Source, back: int) -> None:
        link = self.snapshot()
        obs = Observation(
            source=source,
            provider_status="MYSTERY_STATUS",
            observed_at=at(max(0, self.tick() - back)),
            signal=None,
            generation=link.generation if source is Source.POLL else None,
            campaign_id=link.campaign_id,
        )
        before = self.snapshot()
        d = self.deliver(obs)
        assert d.verdict is Verdict.IGNORED and self.snapshot() == before

    @precondition(can_observe)
    @rule()
    def poll_current(self) -> None:
        """A fresh poll of the current truth: afterwards the snapshot equals the truth."""
        assert self.truth is not None
        before = self.snapshot()
        obs = self.poll_of_truth()
        self.polls.append((obs, obs.generation or 0))
        d = self.deliver(obs)
        after = self.snapshot()
        want = canonical(self.truth)
        ok = after.state is want or after.state in tolerated(self.truth, before.state)
        assert ok, f"(f) poll did not converge: truth {self.truth} -> {after.state} via {d}"
        if after.state is State.COMPLETED and self.truth.phase in ("done", "appeared"):
            assert after.campaign_id == self.truth.campaign, f"(f) campaign: {after} {d}"
        # a fresh poll of the truth is a fixpoint: polling again changes nothing
        again = sm.decide(after, replace(obs, observed_at=at(self.tick())))
        assert again.verdict is not Verdict.APPLIED, f"(f) second poll applied {again}"

    @precondition(lambda self: bool(self.polls))
    @rule(data=st.data())
    def poll_late(self, data: st.DataObject) -> None:
        """A poll answer fetched earlier is processed now (slow worker, redelivered task)."""
        obs, generation = data.draw(st.sampled_from(self.polls))
        self.deliver(obs, older_generation=generation < self.snapshot().generation)

    @precondition(lambda self: self.snapshot().generation > 1 and self.can_observe())
    @rule(data=st.data())
    def poll_older_generation(self, data: st.DataObject) -> None:
        gen = data.draw(st.integers(1, self.snapshot().generation - 1))
        obs = replace(self.poll_of_truth(), generation=gen)
        d = self.deliver(obs, older_generation=True)
        assert d.verdict is Verdict.IGNORED

    # ------------------------------------------------------------------ invariants
    @invariant()
    def generation_only_changes_on_requests(self) -> None:
        if self.link is None:
            return
        # (g) generation never decreases and only changes on requests
        assert self.link.generation == self.expected_generation
        assert self.truth is not None and self.truth.generation == self.link.generation
        assert self.link.generation_started_at <= self.link.observed_at

    @invariant()
    def snapshot_direction_is_the_request(self) -> None:
        if self.link is not None and self.truth is not None:
            assert self.link.direction is self.truth.op


LinkMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=30, deadline=None)
TestLinkStateMachine = LinkMachine.TestCase
