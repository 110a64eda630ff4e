"""Sending the operator's requests (link, unlink, move) for claimed links.

Plivo takes up to ``LINK_BATCH`` numbers in one link request; Telnyx one number a request,
and moves a number between campaigns in one call. Plivo moves by unlinking the number and,
once the carrier has let go of it, linking it to the new campaign. A request that timed out
may have arrived, so it is checked with a GET before it is sent again; a refused request is
checked the same way before the link is failed (our earlier request may be what it refuses).
Before any of that, the pre-flight checks (``worker.preflight``) fail the links known to fail,
and nothing is sent for them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from models.polling import Claim
from models.statemachine import Direction, Signal, Source, State
from providers.base import (
    CredentialsRejected,
    NotLinked,
    NumberStatus,
    PermanentProviderError,
    ProviderClient,
    ProviderError,
    TemporaryProviderError,
)
from worker.errors import Retries, is_refusal, retry_after
from worker.preflight import Preflight
from worker.results import Recorder, Stats, failure, not_linked

#: Numbers per link request for providers that take many at once (Plivo).
LINK_BATCH = 100
#: The provider status recorded for a link the pre-flight checks failed.
PREFLIGHT_REFUSED = "PREFLIGHT_REFUSED"


@dataclass
class RequestSender:
    clients: Mapping[str, ProviderClient]
    recorder: Recorder
    retries: Retries
    #: Checks before a link request leaves (None: no checks).
    preflight: Preflight | None = None

    def send(self, claims: Sequence[Claim], stats: Stats) -> None:
        """Send the requests of claims of one provider and campaign."""
        client = self.clients.get(claims[0].provider)
        if client is None:
            for claim in claims:
                self.retries.retry_later(
                    claim, f"provider {claim.provider} is not configured", None
                )
            return
        claims = self._preflight(client, claims, stats)
        batchable: list[Claim] = []
        for claim in claims:
            if claim.needs_check and self._already_there(client, claim, stats):
                continue
            operation = _operation(client, claim)
            if operation is None:
                batchable.append(claim)
            else:
                self._call(claim, stats, operation)
        for start in range(0, len(batchable), LINK_BATCH):
            self._link_batch(client, batchable[start : start + LINK_BATCH], stats)

    def _preflight(
        self, client: ProviderClient, claims: Sequence[Claim], stats: Stats
    ) -> Sequence[Claim]:
        """Fail the claims the pre-flight checks refuse (no request); the others."""
        refused = self.preflight.refusals(client, claims) if self.preflight else {}
        if not refused:
            return claims
        self.recorder.record_many(
            [
                (c, failure(c, refused[c.link_id], PREFLIGHT_REFUSED))
                for c in claims
                if c.link_id in refused
            ],
            stats,
            source=Source.SYSTEM,
        )
        return [c for c in claims if c.link_id not in refused]

    def _already_there(self, client: ProviderClient, claim: Claim, stats: Stats) -> bool:
        """After a timed-out request: GET first, so a request that did arrive is not resent."""
        try:
            status = client.get(claim.campaign_id, claim.number)
            stats.requests_sent += 1
        except NotLinked:
            stats.requests_sent += 1
            return claim.state is State.UNLINK_REQUESTED and self.recorder.record(
                claim, not_linked(claim, Direction.UNLINK), stats, source=Source.POLL
            )
        except ProviderError as exc:
            stats.requests_sent += 1
            # Still unknown whether the earlier request arrived: keep checking first.
            self.retries.retry_later(claim, str(exc), retry_after(exc), True, timed_out=True)
            return True
        if claim.state is State.LINK_REQUESTED and status.signal is not None:
            return self.recorder.record(claim, status, stats, source=Source.POLL)
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
                    self._on_error(claim, exc, stats)
                return
            # One bad number refuses the whole request: send them one by one to find it.
            for claim in claims:
                self._call(claim, stats, partial(client.link, claim.campaign_id, [claim.number]))
            return
        except ProviderError as exc:
            for claim in claims:
                self._on_error(claim, exc, stats)
            return
        answered = []
        for claim in claims:
            status = statuses.get(claim.number)
            if status is None:
                self.retries.retry_later(claim, "provider did not mention the number", None, True)
            else:
                answered.append((claim, status))
        self.recorder.record_many(answered, stats, source=Source.SYSTEM)

    def _call(self, claim: Claim, stats: Stats, call: Callable[[], list[NumberStatus]]) -> None:
        try:
            stats.requests_sent += 1
            statuses = call()
        except NotLinked:
            if claim.state is State.UNLINK_REQUESTED:
                self.recorder.record(
                    claim, not_linked(claim, Direction.UNLINK), stats, Source.SYSTEM
                )
            else:
                self.recorder.fail(claim, "provider says the number is not linked", stats)
            return
        except ProviderError as exc:
            self._on_error(claim, exc, stats)
            return
        mine = [s for s in statuses if s.number == claim.number] or statuses[:1]
        if not mine:
            self.retries.retry_later(claim, "provider answered without the number", None, True)
            return
        self.recorder.record(claim, mine[0], stats, source=Source.SYSTEM)

    def _on_error(self, claim: Claim, exc: ProviderError, stats: Stats) -> None:
        if is_refusal(exc):
            stats.errors += 1
            self._confirm_rejection(claim, exc, stats)
        else:
            self.retries.on_error(claim, exc, stats, request=True)

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
            self.retries.retry_later(
                claim, f"{exc}; check failed: {check_error}", retry_after(check_error), True
            )
            return
        if unlinking and status is None:
            self.recorder.record(claim, not_linked(claim, Direction.UNLINK), stats, Source.POLL)
        elif (
            not unlinking
            and status is not None
            and status.signal in (Signal.PENDING, Signal.LINKED)
            and status.direction is not Direction.UNLINK
            and status.campaign_id in (None, claim.campaign_id)
        ):
            self.recorder.record(claim, status, stats, source=Source.POLL)
        else:
            self.recorder.fail(claim, f"{exc}" + (f" (code {exc.code})" if exc.code else ""), stats)


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
