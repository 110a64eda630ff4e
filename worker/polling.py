"""Polling claimed links of one campaign: one listing, or one GET per number.

A campaign's listing costs one request per page; when that is fewer requests than one GET
per due number, the campaign is listed (a number missing from the listing is not linked).
Either way the answers are recorded as one batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session

from models.polling import Claim, campaign_sizes
from models.statemachine import Source
from providers.base import NotLinked, NumberStatus, ProviderClient, ProviderError
from worker.errors import Retries
from worker.results import Recorder, Stats, not_linked


@dataclass
class Poller:
    engine: sa.Engine
    clients: Mapping[str, ProviderClient]
    recorder: Recorder
    retries: Retries

    def poll_campaign(
        self, provider: str, campaign_id: str, claims: Sequence[Claim], stats: Stats
    ) -> None:
        client = self.clients.get(provider)
        if client is None:
            for claim in claims:
                self.retries.retry_later(claim, f"provider {provider} is not configured", None)
            return
        if self._list_is_cheaper(client, provider, campaign_id, len(claims)):
            try:
                stats.requests_sent += 1  # at least one; pages are counted by the sandbox
                listed = {s.number: s for s in client.list_campaign(campaign_id)}
            except ProviderError as exc:
                for claim in claims:
                    self.retries.on_error(claim, exc, stats, request=False)
                return
            pairs = [(c, listed.get(c.number) or not_linked(c, None)) for c in claims]
            self.recorder.record_many(pairs, stats, source=Source.POLL)
            return
        answered: list[tuple[Claim, NumberStatus]] = []
        for claim in claims:
            try:
                stats.requests_sent += 1
                status = client.get(claim.campaign_id, claim.number)
            except NotLinked:
                status = not_linked(claim, None)
            except ProviderError as exc:
                self.retries.on_error(claim, exc, stats, request=False)
                continue
            answered.append((claim, status))
        self.recorder.record_many(answered, stats, source=Source.POLL)

    def _list_is_cheaper(
        self, client: ProviderClient, provider: str, campaign_id: str, due: int
    ) -> bool:
        if due < 2:
            return False
        with Session(self.engine) as session:
            size = campaign_sizes(session, provider, [campaign_id]).get(campaign_id, due)
        pages = max(1, math.ceil(size / client.page_size))
        return pages < due
