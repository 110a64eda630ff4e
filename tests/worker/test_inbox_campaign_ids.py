"""A Telnyx callback names the campaign by its UUID (``campaignId``) and, for a shared
campaign, by its TCR id (``tcrCampaignId``): either matches the link (issue 12 §1)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from models.db import transaction
from models.inbox import store_delivery
from models.links import load, request_link_of
from models.statemachine import Source
from providers.telnyx import TelnyxCallbackHandler
from worker.inbox import process_inbox

NUMBER = "+12025550811"
UUID = "751c6a5c-907b-43a9-8ada-ba1dc8335b07"


def status_update(event_id: str, payload: dict[str, str]) -> bytes:
    return json.dumps(
        {
            "data": {
                "event_type": "10dlc.phone_number.update",
                "id": event_id,
                "occurred_at": datetime.now(UTC).isoformat(),
                "payload": {
                    **payload,
                    "phoneNumber": NUMBER,
                    "status": "ADDED",
                    "type": "STATUS_UPDATE",
                },
                "record_type": "event",
            }
        }
    ).encode()


@pytest.mark.parametrize(
    ("link_campaign", "payload", "outcome"),
    [
        # A shared campaign: we know it by its TCR id, the callback names its UUID too.
        ("C4X7Q2A", {"campaignId": UUID, "tcrCampaignId": "C4X7Q2A"}, "applied"),
        ("C4X7Q2A", {"tcrCampaignId": "C4X7Q2A"}, "applied"),
        (UUID, {"campaignId": UUID, "tcrCampaignId": "C4X7Q2A"}, "applied"),
        ("C4X7Q2A", {"campaignId": UUID, "tcrCampaignId": "COTHER1"}, "ignored"),
    ],
)
def test_either_campaign_id_matches_the_link(
    engine: sa.Engine, link_campaign: str, payload: dict[str, str], outcome: str
) -> None:
    with transaction(engine) as s:
        request_link_of(s, "telnyx", NUMBER, link_campaign, source=Source.API)
    body = status_update("ev-1", payload)
    with transaction(engine) as s:
        item = store_delivery(s, "telnyx", "ev-1", body, {"content-type": "application/json"})
    handlers = {"telnyx": TelnyxCallbackHandler(None)}
    assert process_inbox(engine, handlers, [item.id]) == {item.id: outcome}
    with Session(engine) as s:
        link = load(s, "telnyx", NUMBER, lock=False)
        assert link is not None and link.campaign_id == link_campaign
        assert link.state == ("COMPLETED" if outcome == "applied" else "LINK_REQUESTED")
