"""The controller: send requested operations and poll due links until they equal the carrier.

Level-triggered, like a Kubernetes controller: claim what is due, ask the provider, feed the
answer to the state machine as an observation, and write down when to look next. Polls are
the truth; callbacks only make a link due sooner. Everything durable is in the database, so
a crash anywhere means the link is claimed again when its lease runs out.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import sqlalchemy as sa
import structlog
from sqlmodel import Session

from common import crashpoints
from models.alerts import raise_alert
from models.db import transaction
from models.links import apply_observation
from models.polling import Cadence, Claim, campaign_sizes, claim_due, reschedule
from models.statemachine import (
    AlertKind,
    Decision,
    Direction,
    Observation,
    Signal,
    Source,
    State,
    Verdict,
)
from models.tables import Link, utcnow
from providers.base import (
    CredentialsRejected,
    NotLinked,
    NumberStatus,
    PermanentProviderError,
    ProviderClient,
    ProviderError,
    TemporaryProviderError,
)

log = structlog.get_logger(__name__)

#: Numbers per link request for providers that take many at once (Plivo).
LINK_BATCH = 100
#: Records per page of the providers' list endpoints (what the adapters ask for).
LIST_PAGE_SIZE = {"plivo": 20, "telnyx": 100}


@dataclass
class Stats:
    claimed: int = 0
    requests_sent: int = 0
    polled: int = 0
    applied: int = 0
    errors: int = 0
    verdicts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, other: Stats) -> None:
        self.claimed += other.claimed
        self.requests_sent += other.requests_sent
        self.polled += other.polled
        self.applied += other.applied
        self.errors += other.errors
        for k, v in other.verdicts.items():
            self.verdicts[k] += v


@dataclass
class Reconciler:
    engine: sa.Engine
    clients: Mapping[str, ProviderClient]
    cadence: Cadence = field(default_factory=Cadence)
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], datetime] = utcnow

    # -- entry points -------------------------------------------------------------------

    def run_once(
        self,
        *,
        limit: int = 500,
        provider: str | None = None,
        campaign_id: str | None = None,
    ) -> Stats:
        """Claim up to ``limit`` due links and handle them."""
        with transaction(self.engine) as session:
            claims = claim_due(
                session, now=self.clock(), limit=limit, provider=provider, campaign_id=campaign_id
            )
        stats = Stats(claimed=len(claims))
        self.handle(claims, stats)
        return stats

    def make_due(self, *, provider: str | None = None, campaign_id: str | None = None) -> int:
        """Make matching links due now (``dlcsync reconcile``). Returns how many."""
        stmt = sa.update(Link).values(next_poll_at=self.clock())
        if provider is not None:
            stmt = stmt.where(Link.provider == provider)  # type: ignore[arg-type]
        if campaign_id is not None:
            stmt = stmt.where(Link.campaign_id == campaign_id)  # type: ignore[arg-type]
        with transaction(self.engine) as session:
            return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]

    def handle(self, claims: list[Claim], stats: Stats) -> None:
        requested = [c for c in claims if c.requested]
        polls = [c for c in claims if not c.requested]
        for claim_group in _group(requested, key=lambda c: (c.provider, c.campaign_id)).values():
            self._send_requests(claim_group, stats)
        for (prov, campaign), group in _group(
            polls, key=lambda c: (c.provider, c.campaign_id)
        ).items():
            self._poll_campaign(prov, campaign, group, stats)

    # -- sending operator requests -----------------------------------------------------------

    def _send_requests(self, claims: list[Claim], stats: Stats) -> None:
        client = self.clients.get(claims[0].provider)
        if client is None:
            for claim in claims:
                self._retry_later(
                    claim, f"provider {claim.provider} is not configured", None, stats
                )
            return
        batchable: list[Claim] = []
        for claim in claims:
            if claim.needs_check and self._already_there(client, claim, stats):
                continue
            operation = self._operation(client, claim)
            if operation is None:
                batchable.append(claim)
            else:
                self._call(claim, stats, operation)
        for start in range(0, len(batchable), LINK_BATCH):
            self._link_batch(client, batchable[start : start + LINK_BATCH], stats)

    @staticmethod
    def _operation(client: ProviderClient, claim: Claim) -> Callable[[], list[NumberStatus]] | None:
        """The provider call a requested claim needs; None when it joins a batch link."""
        number, campaign, prior = claim.number, claim.campaign_id, claim.prior_campaign_id

        def unlink() -> list[NumberStatus]:
            return [client.unlink(campaign, number)]

        def move() -> list[NumberStatus]:
            return [client.move(number, prior or "", campaign)]

        def unlink_then_link() -> list[NumberStatus]:
            # Plivo moves a number by unlinking it from the old campaign and, once the
            # carrier has let go of it, linking it to the new one. Until then: retry later.
            try:
                client.get(prior or "", number)
            except NotLinked:
                return client.link(campaign, [number])
            try:
                client.unlink(prior or "", number)
            except NotLinked:
                return client.link(campaign, [number])
            except PermanentProviderError:
                pass  # already being unlinked
            raise TemporaryProviderError(f"waiting for the unlink from campaign {prior}")

        def link() -> list[NumberStatus]:
            return client.link(campaign, [number])

        if claim.state is State.UNLINK_REQUESTED:
            return unlink
        if prior:
            return move if client.supports_move else unlink_then_link
        return None if client.batch_link else link

    def _already_there(self, client: ProviderClient, claim: Claim, stats: Stats) -> bool:
        """After a timed-out request: GET first, so a request that did arrive is not resent."""
        try:
            status = client.get(claim.campaign_id, claim.number)
            stats.requests_sent += 1
        except NotLinked:
            stats.requests_sent += 1
            return claim.state is State.UNLINK_REQUESTED and self._apply_status(
                claim, _not_linked(claim, Direction.UNLINK), stats, source=Source.POLL
            )
        except ProviderError as exc:
            stats.requests_sent += 1
            retry_after = exc.retry_after if isinstance(exc, TemporaryProviderError) else None
            # Still unknown whether the earlier request arrived: keep checking first.
            self._retry_later(claim, str(exc), retry_after, stats, True, timed_out=True)
            return True
        if claim.state is State.LINK_REQUESTED and status.signal is not None:
            return self._apply_status(claim, status, stats, source=Source.POLL)
        return False

    def _link_batch(self, client: ProviderClient, claims: list[Claim], stats: Stats) -> None:
        if not claims:
            return
        numbers = [c.number for c in claims]
        try:
            stats.requests_sent += 1
            statuses = {s.number: s for s in client.link(claims[0].campaign_id, numbers)}
        except PermanentProviderError as exc:
            if isinstance(exc, CredentialsRejected) or len(claims) == 1:
                for claim in claims:
                    self._on_error(claim, exc, stats, request=True)
                return
            # One bad number refuses the whole request: send them one by one to find it.
            for claim in claims:
                self._call(claim, stats, partial(client.link, claim.campaign_id, [claim.number]))
            return
        except ProviderError as exc:
            for claim in claims:
                self._on_error(claim, exc, stats, request=True)
            return
        for claim in claims:
            status = statuses.get(claim.number)
            if status is None:
                self._retry_later(claim, "provider did not mention the number", None, stats, True)
            else:
                self._apply_status(claim, status, stats, source=Source.SYSTEM)

    def _call(self, claim: Claim, stats: Stats, call: Callable[[], list[NumberStatus]]) -> None:
        try:
            stats.requests_sent += 1
            statuses = call()
        except NotLinked:
            if claim.state is State.UNLINK_REQUESTED:
                self._apply_status(
                    claim, _not_linked(claim, Direction.UNLINK), stats, Source.SYSTEM
                )
            else:
                self._fail(claim, "provider says the number is not linked", stats)
            return
        except ProviderError as exc:
            self._on_error(claim, exc, stats, request=True)
            return
        mine = [s for s in statuses if s.number == claim.number] or statuses[:1]
        if not mine:
            self._retry_later(claim, "provider answered without the number", None, stats, True)
            return
        self._apply_status(claim, mine[0], stats, source=Source.SYSTEM)

    # -- polling ---------------------------------------------------------------------------

    def _poll_campaign(
        self, provider: str, campaign_id: str, claims: list[Claim], stats: Stats
    ) -> None:
        client = self.clients.get(provider)
        if client is None:
            for claim in claims:
                self._retry_later(claim, f"provider {provider} is not configured", None, stats)
            return
        if self._list_is_cheaper(provider, campaign_id, len(claims)):
            try:
                stats.requests_sent += 1  # at least one; pages are counted by the sandbox
                listed = {s.number: s for s in client.list_campaign(campaign_id)}
            except ProviderError as exc:
                for claim in claims:
                    self._on_error(claim, exc, stats, request=False)
                return
            pairs = [(c, listed.get(c.number) or _not_linked(c, None)) for c in claims]
            self._apply_statuses(pairs, stats, source=Source.POLL)
            return
        for claim in claims:
            try:
                stats.requests_sent += 1
                status = client.get(claim.campaign_id, claim.number)
            except NotLinked:
                status = _not_linked(claim, None)
            except ProviderError as exc:
                self._on_error(claim, exc, stats, request=False)
                continue
            self._apply_status(claim, status, stats, source=Source.POLL)

    def _list_is_cheaper(self, provider: str, campaign_id: str, due: int) -> bool:
        if due < 2:
            return False
        with Session(self.engine) as session:
            size = campaign_sizes(session, provider, [campaign_id]).get(campaign_id, due)
        pages = max(1, math.ceil(size / LIST_PAGE_SIZE.get(provider, 20)))
        return pages < due

    # -- recording results -------------------------------------------------------------------

    def _apply_statuses(
        self, pairs: list[tuple[Claim, NumberStatus]], stats: Stats, source: Source
    ) -> None:
        """Record one listing's answers for many claims: one transaction, a savepoint each.

        One commit per campaign page instead of one per number (bench/: the commit per number
        was what bounded polling). A claim whose savepoint fails is recorded again alone
        afterwards, the way it always was; if the shared transaction fails, all of them are.
        """
        if len(pairs) < 2:
            for claim, status in pairs:
                self._apply_status(claim, status, stats, source=source)
            return
        decisions: list[Decision] = []
        again: list[tuple[Claim, NumberStatus]] = []
        try:
            with transaction(self.engine) as session:
                for claim, status in pairs:
                    crashpoints.reach("provider.after_call")
                    now = self.clock()
                    try:
                        with session.begin_nested():
                            decision = apply_observation(
                                session,
                                claim.provider,
                                claim.number,
                                self._observation(claim, status, source, now),
                                now=now,
                            )
                            self._schedule_after(session, claim, decision, now)
                    except Exception as exc:
                        log.info("batched apply failed", number=claim.number, error=str(exc))
                        again.append((claim, status))
                        continue
                    decisions.append(decision)
        except Exception as exc:
            log.warning("batched apply failed; one at a time", rows=len(pairs), error=str(exc))
            decisions, again = [], pairs
        for decision in decisions:
            stats.polled += source is Source.POLL
            stats.verdicts[decision.verdict.value] += 1
            stats.applied += decision.verdict is Verdict.APPLIED
        for claim, status in again:
            self._apply_status(claim, status, stats, source=source)

    @staticmethod
    def _observation(
        claim: Claim, status: NumberStatus, source: Source, now: datetime
    ) -> Observation:
        return Observation(
            source=source,
            provider_status=status.provider_status,
            observed_at=now,
            signal=status.signal,
            direction=status.direction,
            campaign_id=status.campaign_id,
            generation=claim.generation,
            reason=status.reason,
            provider_time=status.provider_time,
            carrier_mapping=status.carrier_mapping,
        )

    def _apply_status(
        self, claim: Claim, status: NumberStatus, stats: Stats, source: Source
    ) -> bool:
        crashpoints.reach("provider.after_call")
        now = self.clock()
        obs = self._observation(claim, status, source, now)
        with transaction(self.engine) as session:
            decision = apply_observation(session, claim.provider, claim.number, obs, now=now)
            self._schedule_after(session, claim, decision, now)
        stats.polled += source is Source.POLL
        stats.verdicts[decision.verdict.value] += 1
        stats.applied += decision.verdict is Verdict.APPLIED
        return decision.verdict is Verdict.APPLIED

    def _schedule_after(
        self, session: Session, claim: Claim, decision: Decision, now: datetime
    ) -> None:
        changed = decision.verdict is Verdict.APPLIED
        state = decision.to_state if changed and decision.to_state else claim.state
        if state in (State.LINK_REQUESTED, State.UNLINK_REQUESTED):
            # Still not accepted (a GET after a timeout found nothing): send again soon.
            reschedule(session, claim, delay=self.cadence.backoff(0), now=now, needs_check=False)
            return
        attempts = 0 if changed or claim.requested else claim.attempts + 1
        reschedule(
            session,
            claim,
            delay=self.cadence.after_poll(state, attempts, self.rng),
            now=now,
            poll_attempts=attempts,
            # The provider accepted the request: its retry state and any move are done.
            request_attempts=0 if claim.requested else None,
            needs_check=False if claim.requested else None,
            clear_prior_campaign=claim.requested,
        )

    def _fail(self, claim: Claim, reason: str, stats: Stats) -> None:
        direction = Direction.UNLINK if claim.state is State.UNLINK_REQUESTED else Direction.LINK
        status = NumberStatus(
            number=claim.number,
            campaign_id=claim.campaign_id,
            provider_status="REJECTED",
            signal=Signal.FAILED,
            direction=direction,
            reason=reason,
        )
        self._apply_status(claim, status, stats, source=Source.SYSTEM)

    def _confirm_rejection(self, claim: Claim, exc: ProviderError, stats: Stats) -> None:
        """A request was refused. If the provider already has what we asked for (our earlier
        request arrived, and we crashed before recording it), that is not a failure."""
        client = self.clients[claim.provider]
        unlinking = claim.state is State.UNLINK_REQUESTED
        try:
            stats.requests_sent += 1
            status: NumberStatus | None = client.get(claim.campaign_id, claim.number)
        except NotLinked:
            status = None
        except ProviderError as check_error:
            # Cannot tell whether the provider already has it: decide on a later attempt.
            retry_after = (
                check_error.retry_after if isinstance(check_error, TemporaryProviderError) else None
            )
            self._retry_later(
                claim, f"{exc}; check failed: {check_error}", retry_after, stats, True
            )
            return
        if unlinking and status is None:
            self._apply_status(claim, _not_linked(claim, Direction.UNLINK), stats, Source.POLL)
        elif (
            not unlinking
            and status is not None
            and status.signal in (Signal.PENDING, Signal.LINKED)
            and status.direction is not Direction.UNLINK
            and status.campaign_id in (None, claim.campaign_id)
        ):
            self._apply_status(claim, status, stats, source=Source.POLL)
        else:
            self._fail(claim, f"{exc}" + (f" (code {exc.code})" if exc.code else ""), stats)

    def _on_error(self, claim: Claim, exc: ProviderError, stats: Stats, *, request: bool) -> None:
        stats.errors += 1
        if isinstance(exc, CredentialsRejected):
            with transaction(self.engine) as session:
                raise_alert(
                    session,
                    AlertKind.CREDENTIALS,
                    key_extra=f"{claim.provider}:{self.clock():%Y-%m-%dT%H}",
                    reason=f"{claim.provider} rejected our credentials: {exc}",
                    payload={"provider": claim.provider},
                )
        elif isinstance(exc, PermanentProviderError) and request:
            self._confirm_rejection(claim, exc, stats)
            return
        retry_after = exc.retry_after if isinstance(exc, TemporaryProviderError) else None
        timed_out = isinstance(exc, TemporaryProviderError) and exc.timed_out
        self._retry_later(claim, str(exc), retry_after, stats, request, timed_out=timed_out)

    def _retry_later(
        self,
        claim: Claim,
        error: str,
        retry_after: float | None,
        stats: Stats,
        request: bool | None = None,
        *,
        timed_out: bool = False,
    ) -> None:
        request = claim.requested if request is None else request
        attempts = claim.attempts + 1
        delay = max(retry_after or 0.0, self.cadence.backoff(attempts, self.rng))
        log.info(
            "will retry", provider=claim.provider, number=claim.number, error=error, delay=delay
        )
        with transaction(self.engine) as session:
            reschedule(
                session,
                claim,
                delay=delay,
                now=self.clock(),
                error=error,
                poll_attempts=None if request else attempts,
                request_attempts=attempts if request else None,
                needs_check=(timed_out or claim.needs_check) if request else None,
            )


def _not_linked(claim: Claim, direction: Direction | None) -> NumberStatus:
    return NumberStatus(
        number=claim.number,
        campaign_id=claim.campaign_id,
        provider_status="NOT_LINKED",
        signal=Signal.NOT_LINKED,
        direction=direction,
    )


def _group(
    claims: Iterable[Claim], key: Callable[[Claim], tuple[str, str]]
) -> dict[tuple[str, str], list[Claim]]:
    groups: dict[tuple[str, str], list[Claim]] = defaultdict(list)
    for claim in claims:
        groups[key(claim)].append(claim)
    return groups


def until_quiet(
    reconciler: Reconciler,
    *,
    provider: str | None = None,
    campaign_id: str | None = None,
    max_rounds: int = 1000,
    on_round: Callable[[Stats], None] | None = None,
) -> Stats:
    """Run rounds until nothing is due (``dlcsync reconcile`` and tests)."""
    total = Stats()
    for _ in range(max_rounds):
        stats = reconciler.run_once(provider=provider, campaign_id=campaign_id)
        total.add(stats)
        if on_round:
            on_round(stats)
        if stats.claimed == 0:
            break
    return total
