"""The controller: send requested operations and poll due links until they equal the carrier.

Level-triggered, like a Kubernetes controller: claim what is due, ask the provider, feed the
answer to the state machine as an observation, and write down when to look next. Polls are
the truth; callbacks only make a link due sooner. Everything durable is in the database, so
a crash anywhere means the link is claimed again when its short lease runs out.

One job per module: ``worker.requests`` sends the operator's requests, ``worker.polling``
polls, ``worker.errors`` decides what an error means and when to retry, ``worker.results``
records answers (through the set-based ``models.apply``) and schedules the next look.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from models.db import transaction
from models.polling import CLAIM_LEASE, Cadence, Claim, claim_due, make_due
from models.tables import utcnow
from providers.base import ProviderClient
from worker.errors import Retries
from worker.leases import HeldLease, stopping
from worker.polling import Poller
from worker.preflight import Preflight
from worker.requests import RequestSender
from worker.results import Recorder, Stats

__all__ = ["Reconciler", "Stats", "until_quiet"]


@dataclass
class Reconciler:
    engine: sa.Engine
    clients: Mapping[str, ProviderClient]
    cadence: Cadence = field(default_factory=Cadence)
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], datetime] = utcnow
    #: Checks before a link request leaves (None: no checks).
    preflight: Preflight | None = None
    lease: timedelta = CLAIM_LEASE
    requests: RequestSender = field(init=False)
    poller: Poller = field(init=False)

    def __post_init__(self) -> None:
        recorder = Recorder(self.engine, self.cadence, self.rng, self.clock)
        retries = Retries(self.engine, self.cadence, self.rng, self.clock)
        self.requests = RequestSender(self.clients, recorder, retries, self.preflight)
        self.poller = Poller(self.engine, self.clients, recorder, retries)

    def run_once(
        self,
        *,
        limit: int = 500,
        provider: str | None = None,
        campaign_id: str | None = None,
    ) -> Stats:
        """Claim up to ``limit`` due links (whole campaigns) and handle them, holding their
        lease while working (``worker.leases``)."""
        now = self.clock()
        with transaction(self.engine) as session:
            claims = claim_due(
                session,
                now=now,
                limit=limit,
                provider=provider,
                campaign_id=campaign_id,
                lease=self.lease,
            )
        stats = Stats(claimed=len(claims))
        if not claims:
            return stats
        held = HeldLease(
            self.engine,
            (c.link_id for c in claims),
            now + self.lease,
            clock=self.clock,
            lease=self.lease,
        )
        with held.kept():
            self.handle(claims, stats)
        return stats

    def make_due(self, *, provider: str | None = None, campaign_id: str | None = None) -> int:
        """Make matching links due now (``dlcsync reconcile``). Returns how many."""
        with transaction(self.engine) as session:
            return make_due(session, now=self.clock(), provider=provider, campaign_id=campaign_id)

    def handle(self, claims: list[Claim], stats: Stats) -> None:
        """Send requests, then poll, one campaign at a time; a shutdown stops between
        campaigns (the claims not worked are released by the lease's holder)."""
        requested = [c for c in claims if c.requested]
        polls = [c for c in claims if not c.requested]
        for group in _by_campaign(requested).values():
            if stopping():
                return
            self.requests.send(group, stats)
        for (provider, campaign), group in _by_campaign(polls).items():
            if stopping():
                return
            self.poller.poll_campaign(provider, campaign, group, stats)


def _by_campaign(claims: Iterable[Claim]) -> dict[tuple[str, str], list[Claim]]:
    groups: dict[tuple[str, str], list[Claim]] = defaultdict(list)
    for claim in claims:
        groups[(claim.provider, claim.campaign_id)].append(claim)
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
