"""Pre-flight checks: fail a link at once, with a clear reason, when it is known to fail.

Before a campaign's link requests leave (DESIGN §8 "Pre-flight"):

* the campaign exists at the provider and its status lets it take numbers;
* the campaign's number cap is not exceeded: the operator's override
  (``dlcsync campaign set --max-numbers``) when there is one, else 1 for a sole-proprietor
  campaign and 49 without number pooling (the T-Mobile rule); with neither, no cap. What
  dlcsync holds on the campaign (linked, pending or still being unlinked) counts.

Only a definite answer refuses. A failed lookup, or a field the provider did not send, lets
the request go and is logged. Lookups are cached per campaign for ``ttl`` seconds. A link
requested with ``--skip-preflight`` is never checked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
import structlog
from sqlmodel import Session, col, select

from models.polling import Claim
from models.statemachine import State
from models.tables import CampaignLimit, Link
from providers.base import CampaignInfo, ProviderClient, ProviderError

log = structlog.get_logger(__name__)

NO_POOLING_CAP = 49
SOLE_PROPRIETOR_CAP = 1
#: States in which a number occupies a place on its campaign at the carrier.
OCCUPYING = (
    State.LINK_REQUESTED.value,
    State.PROCESSING.value,
    State.COMPLETED.value,
    State.UNLINK_REQUESTED.value,
    State.UNLINK_PROCESSING.value,
    State.UNLINK_FAILED.value,
)


@dataclass
class Preflight:
    engine: sa.Engine
    ttl: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _cache: dict[tuple[str, str], tuple[float, CampaignInfo]] = field(default_factory=dict)

    def refusals(self, client: ProviderClient, claims: Sequence[Claim]) -> dict[int, str]:
        """Why each refused link claim (all on one campaign) must not be sent, by link id."""
        checked = [c for c in claims if c.state is State.LINK_REQUESTED and not c.skip_preflight]
        if not checked:
            return {}
        provider, campaign = checked[0].provider, checked[0].campaign_id
        info = self.campaign(client, campaign)
        if info is not None and not info.exists:
            why = f"pre-flight: campaign {campaign} does not exist at {provider}"
            return {c.link_id: why for c in checked}
        if info is not None and info.can_take_numbers is False:
            why = f"pre-flight: campaign {campaign} cannot take numbers ({info.why})"
            return {c.link_id: why for c in checked}
        cap, rule = self.cap(provider, campaign, info)
        if cap is None:
            return {}
        ids = [c.link_id for c in checked]
        with Session(self.engine) as session:
            held = session.exec(
                select(sa.func.count()).where(
                    Link.provider == provider,
                    Link.campaign_id == campaign,
                    col(Link.state).in_(OCCUPYING),
                    col(Link.id).not_in(ids),
                )
            ).one()
        room = max(0, cap - int(held))
        why = (
            f"pre-flight: campaign {campaign} is at its limit of {cap} number(s) ({rule}); "
            f"dlcsync holds {held} on it"
        )
        return {c.link_id: why for c in sorted(checked, key=lambda c: c.link_id)[room:]}

    def campaign(self, client: ProviderClient, campaign: str) -> CampaignInfo | None:
        key = (client.name, campaign)
        now = self.clock()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            info = client.campaign(campaign)
        except ProviderError as exc:
            log.warning(
                "pre-flight lookup failed; sending anyway", campaign=campaign, error=str(exc)
            )
            return None
        self._cache[key] = (now + self.ttl, info)
        if info.exists and info.can_take_numbers is None:
            log.info(
                "pre-flight: campaign status not conclusive", campaign=campaign, status=info.status
            )
        return info

    def cap(
        self, provider: str, campaign: str, info: CampaignInfo | None
    ) -> tuple[int | None, str]:
        with Session(self.engine) as session:
            override = session.exec(
                select(CampaignLimit.max_numbers).where(
                    CampaignLimit.provider == provider, CampaignLimit.campaign_id == campaign
                )
            ).first()
        if override is not None:
            return override, "operator's limit"
        if info is not None and info.sole_proprietor:
            return SOLE_PROPRIETOR_CAP, "sole proprietor"
        if info is not None and info.number_pooling is False:
            return NO_POOLING_CAP, "no number pooling"
        return None, ""
