"""The operator's number cap per campaign (read by the pre-flight check)."""

from __future__ import annotations

from sqlmodel import Session, select

from models.tables import CampaignLimit, utcnow


def set_limit(session: Session, provider: str, campaign_id: str, max_numbers: int) -> None:
    """Create or replace the cap (not committed)."""
    row = session.exec(
        select(CampaignLimit)
        .where(CampaignLimit.provider == provider, CampaignLimit.campaign_id == campaign_id)
        .with_for_update()
    ).first()
    if row is None:
        row = CampaignLimit(provider=provider, campaign_id=campaign_id, max_numbers=max_numbers)
    row.max_numbers = max_numbers
    row.updated_at = utcnow()
    session.add(row)
