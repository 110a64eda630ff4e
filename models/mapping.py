"""Per-carrier mapping status of a link (Telnyx), its history and its alert.

A number can be ASSIGNED at Telnyx while one carrier's mapping FAILED; its messages to that
carrier's subscribers are then filtered. The statuses travel with observations
(``Observation.carrier_mapping``), are stored on the link (``links.carrier_mapping``), and
every change of one carrier's status writes a ``mapping_changes`` row, not an audit row:
the audit log keeps one row per state change. A FAILED mapping raises
``carrier_mapping_failed`` once per link, generation and carrier.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from models.alerts import outbox as alerts
from models.alerts.kinds import AlertKind
from models.statemachine import Decision, Observation, State, Verdict
from models.tables import Link, MappingChange

FAILED = "FAILED"
#: How carriers are named in alerts and history.
CARRIER_NAMES = {"tmobile": "T-Mobile", "non_tmobile": "non-T-Mobile carriers", "att": "AT&T"}


def applies(decision: Decision) -> bool:
    """Whether an observation with this decision is about the link's current generation and
    campaign while it is linked (so its mapping is the link's): a duplicate, or a change to
    COMPLETED."""
    if decision.verdict is Verdict.DUPLICATE:
        return True
    return decision.verdict is Verdict.APPLIED and decision.to_state is State.COMPLETED


def record(session: Session, link: Link, obs: Observation, *, now: datetime) -> int:
    """Save the mapping an observation carries, if it changed. Returns carriers changed.

    Call only for observations about the link's current generation and campaign (applied
    or duplicate); the link row is locked by the caller.
    """
    if not obs.carrier_mapping:
        return 0
    before = dict(link.carrier_mapping or {})
    after = before | dict(obs.carrier_mapping)
    changed = [(c, before.get(c), s) for c, s in sorted(after.items()) if before.get(c) != s]
    if not changed:
        return 0
    assert link.id is not None
    session.execute(
        sa.update(Link)
        .where(col(Link.id) == link.id)
        .values(carrier_mapping=after)
        .execution_options(synchronize_session=False)
    )
    link.carrier_mapping = after  # a batch keeps deciding on this (detached) copy
    session.execute(
        sa.insert(MappingChange),
        [
            {
                "link_id": link.id,
                "provider": link.provider,
                "number": link.number,
                "campaign_id": link.campaign_id,
                "generation": link.generation,
                "carrier": carrier,
                "from_status": old,
                "to_status": new,
                "source": obs.source.value,
                "recorded_at": now,
            }
            for carrier, old, new in changed
        ],
    )
    for carrier, _old, new in changed:
        if new.upper() == FAILED:
            name = CARRIER_NAMES.get(carrier, carrier)
            alerts.raise_alert(
                session,
                AlertKind.CARRIER_MAPPING_FAILED,
                link=link,
                reason=f"{name} mapping FAILED (mapping: {_describe(after)})",
                key_extra=carrier,
                payload={"carrier": carrier, "carrier_mapping": after},
                now=now,
            )
    return len(changed)


def _describe(mapping: dict[str, str]) -> str:
    return ", ".join(f"{CARRIER_NAMES.get(c, c)} {s}" for c, s in sorted(mapping.items()))


def history(session: Session, link_ids: Sequence[int]) -> list[MappingChange]:
    """Mapping changes of these links, oldest first."""
    if not link_ids:
        return []
    return list(
        session.exec(
            select(MappingChange)
            .where(col(MappingChange.link_id).in_(link_ids))
            .order_by(col(MappingChange.recorded_at), col(MappingChange.id))
        ).all()
    )
