"""The ``dlcsync.check_campaigns`` beat task's work: campaign hygiene alerts (models.hygiene)."""

from __future__ import annotations

import sqlalchemy as sa
import structlog

from models import hygiene
from models.db import transaction

log = structlog.get_logger(__name__)


def check_campaigns(engine: sa.Engine) -> int:
    """Raise campaign_empty and campaign_failing alerts. Returns how many were raised."""
    with transaction(engine) as session:
        raised = hygiene.detect_empty(session)
    with transaction(engine) as session:
        raised += hygiene.detect_failing(session)
    if raised:
        log.info("campaign hygiene alerts raised", count=raised)
    return raised
