"""Campaigns as the sandbox's carrier sees them: status, pooling, use case, a number cap and
Telnyx's dormancy. Pure and thread-safe; the HTTP shapes are built here too, so ``app.py``
only routes.

A campaign nobody configured exists, is active, pools numbers and has no cap, so any
campaign id works out of the box; ``POST /_sandbox/campaigns`` changes one (or makes it
unknown: ``exists: false`` answers 404).
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any

#: A dormant campaign's first assignment fails with this reason and wakes the campaign up.
DORMANT_REASON = "Campaign is dormant; the assignment reactivated it, assign the number again"


class CampaignConfigError(ValueError):
    """A bad field in a campaign change."""


@dataclass
class Campaign:
    provider: str
    campaign_id: str
    exists: bool = True
    #: Plivo ``registration_status`` (ACTIVE, PROCESSING, FAILED, EXPIRED) or Telnyx
    #: ``campaignStatus`` (MNO_PROVISIONED, TCR_SUSPENDED, ...).
    status: str | None = None
    #: Telnyx ``status`` (ACTIVE or EXPIRED).
    telnyx_status: str = "ACTIVE"
    pooling: bool = True
    usecase: str = "MIXED"
    tmobile_suspended: bool = False
    #: The carrier refuses a link that would put more numbers than this on the campaign.
    max_numbers: int | None = None
    dormant: bool = False

    def __post_init__(self) -> None:
        if self.status is None:
            self.status = "ACTIVE" if self.provider == "plivo" else "MNO_PROVISIONED"


_FIELDS: dict[str, type | tuple[type, ...]] = {
    "exists": bool,
    "status": str,
    "telnyx_status": str,
    "pooling": bool,
    "usecase": str,
    "tmobile_suspended": bool,
    "max_numbers": (int, type(None)),
    "dormant": bool,
}


class Campaigns:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._campaigns: dict[tuple[str, str], Campaign] = {}

    def get(self, provider: str, campaign_id: str) -> Campaign:
        with self._lock:
            found = self._campaigns.get((provider, campaign_id))
            return dataclasses.replace(found) if found else Campaign(provider, campaign_id)

    def configured(self, provider: str) -> list[Campaign]:
        with self._lock:
            return [
                dataclasses.replace(c) for (p, _), c in self._campaigns.items() if p == provider
            ]

    def update(self, provider: str, campaign_id: str, changes: dict[str, Any]) -> Campaign:
        for key, value in changes.items():
            kind = _FIELDS.get(key)
            if kind is None:
                raise CampaignConfigError(f"unknown campaign field {key!r}")
            if not isinstance(value, kind) or (key == "max_numbers" and isinstance(value, bool)):
                raise CampaignConfigError(f"bad value for {key!r}")
            if key == "max_numbers" and isinstance(value, int) and value < 0:
                raise CampaignConfigError("max_numbers must be >= 0")
        with self._lock:
            current = self._campaigns.get((provider, campaign_id)) or Campaign(
                provider, campaign_id
            )
            updated = dataclasses.replace(current, **changes)
            self._campaigns[(provider, campaign_id)] = updated
            return dataclasses.replace(updated)

    def wake(self, provider: str, campaign_id: str) -> bool:
        """Clear dormancy; True if the campaign was dormant (this assignment is the cure)."""
        with self._lock:
            found = self._campaigns.get((provider, campaign_id))
            if found is None or not found.dormant:
                return False
            found.dormant = False
            return True

    def reset(self) -> None:
        with self._lock:
            self._campaigns.clear()


def plivo_campaign(c: Campaign, auth_id: str) -> dict[str, Any]:
    """The ``campaign`` object of Plivo's campaign lookup and list (REFERENCE §12)."""
    return {
        "campaign_id": c.campaign_id,
        "registration_status": c.status,
        "usecase": c.usecase,
        "sub_usecases": [],
        "brand_id": "BSANDBX",
        "campaign_source": "plivo",
        "resource_uri": f"/v1/Account/{auth_id}/10dlc/Campaign/{c.campaign_id}/",
    }


def telnyx_campaign(c: Campaign, *, shared: bool) -> dict[str, Any]:
    """``TelnyxCampaign_CSP`` (own) or ``TelnyxDownstreamCampaign`` (shared)."""
    body: dict[str, Any] = {
        "campaignId": c.campaign_id,
        "campaignStatus": c.status,
        "numberPool": c.pooling,
        "usecase": c.usecase,
        "description": f"Sandbox campaign {c.campaign_id}",
    }
    if shared:
        body["isNumberPoolingEnabled"] = c.pooling
    else:
        body |= {
            "status": c.telnyx_status,
            "isTMobileNumberPoolingEnabled": c.pooling,
            "isTMobileSuspended": c.tmobile_suspended,
        }
    return body
