"""Grouping: a (kind, provider, campaign) is *hot* when more than ``GROUP_THRESHOLD`` of its
alerts were raised within ``GROUP_WINDOW`` or more than that many are waiting. The waiting
alerts of a hot group become ``grouped`` members of one digest row (itself an alert that is
delivered like any other), and a hot group gets at most one digest per ``DIGEST_INTERVAL``;
later members wait for the next one. So a bulk failure of 1,000 numbers is at most
``GROUP_THRESHOLD`` single messages plus one digest per minute, while the table keeps one
row per affected link.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from models.alerts.states import DeliveryState
from models.db import is_postgres
from models.tables import Alert, utcnow

GROUP_THRESHOLD = 5
GROUP_WINDOW = timedelta(seconds=60)
DIGEST_INTERVAL = timedelta(seconds=60)
#: Numbers a digest's JSON carries (its text names fewer: messages.DIGEST_SAMPLE).
DIGEST_MAX_NUMBERS = 1000


@dataclass(frozen=True)
class GroupKey:
    kind: str
    provider: str | None
    campaign_id: str | None

    def where(self) -> list[sa.ColumnElement[bool]]:
        return [
            col(Alert.kind) == self.kind,
            col(Alert.provider).is_not_distinct_from(self.provider),
            col(Alert.campaign_id).is_not_distinct_from(self.campaign_id),
            col(Alert.is_digest).is_(False),
        ]


def group_key(alert: Alert) -> GroupKey:
    return GroupKey(alert.kind, alert.provider, alert.campaign_id)


def _count(session: Session, *where: sa.ColumnElement[bool]) -> int:
    return int(session.exec(select(sa.func.count()).select_from(Alert).where(*where)).one())


def is_hot(session: Session, key: GroupKey, now: datetime) -> bool:
    """More than GROUP_THRESHOLD alerts raised within GROUP_WINDOW, or waiting."""
    recent = _count(session, *key.where(), col(Alert.created_at) >= now - GROUP_WINDOW)
    if recent > GROUP_THRESHOLD:
        return True
    return (
        _count(session, *key.where(), col(Alert.state) == DeliveryState.PENDING) > GROUP_THRESHOLD
    )


def _lock_group(session: Session, key: GroupKey) -> None:
    """Serialise grouping of one key across workers (SQLite's BEGIN IMMEDIATE already does)."""
    if is_postgres(session):
        name = f"dlcsync-alert-group:{key.kind}:{key.provider}:{key.campaign_id}"
        session.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": name})


def group_pending(session: Session, *, now: datetime | None = None) -> list[int]:
    """Roll the waiting alerts of every hot group into a digest row. Returns digest ids."""
    now = now or utcnow()
    groups = session.exec(
        select(Alert.kind, Alert.provider, Alert.campaign_id)
        .where(col(Alert.state) == DeliveryState.PENDING, col(Alert.is_digest).is_(False))
        .group_by(col(Alert.kind), col(Alert.provider), col(Alert.campaign_id))
    ).all()
    digests: list[int] = []
    for kind, provider, campaign_id in groups:
        key = GroupKey(kind, provider, campaign_id)
        if not is_hot(session, key, now):
            continue
        _lock_group(session, key)
        digest_id = _make_digest(session, key, now)
        if digest_id is not None:
            digests.append(digest_id)
    return digests


def _make_digest(session: Session, key: GroupKey, now: datetime) -> int | None:
    last = session.exec(
        select(sa.func.max(Alert.created_at)).where(
            col(Alert.kind) == key.kind,
            col(Alert.provider).is_not_distinct_from(key.provider),
            col(Alert.campaign_id).is_not_distinct_from(key.campaign_id),
            col(Alert.is_digest).is_(True),
        )
    ).one()
    pending = [*key.where(), col(Alert.state) == DeliveryState.PENDING]
    if last is not None:
        last = last if last.tzinfo else last.replace(tzinfo=now.tzinfo)
        if now - last < DIGEST_INTERVAL:
            # One digest per interval: the rest wait for the next one (not sent one by one).
            session.execute(
                sa.update(Alert)
                .where(*pending, col(Alert.next_attempt_at) < last + DIGEST_INTERVAL)
                .values(next_attempt_at=last + DIGEST_INTERVAL)
                .execution_options(synchronize_session=False)
            )
            return None
    digest = Alert(
        kind=key.kind,
        dedupe_key=f"digest:{uuid.uuid4().hex}",
        provider=key.provider,
        campaign_id=key.campaign_id,
        payload={},
        state=DeliveryState.PENDING,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
        is_digest=True,
    )
    session.add(digest)
    session.flush()
    assert digest.id is not None
    result = session.execute(
        sa.update(Alert)
        .where(*pending)
        .values(state=DeliveryState.GROUPED, digest_id=digest.id, next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )
    count = int(result.rowcount)  # type: ignore[attr-defined]
    if count == 0:  # another worker took them between our look and our lock
        session.delete(digest)
        return None
    members = session.exec(
        select(Alert.number, Alert.payload, Alert.created_at)
        .where(col(Alert.digest_id) == digest.id)
        .order_by(col(Alert.id))
        .limit(DIGEST_MAX_NUMBERS)
    ).all()
    bounds = session.exec(
        select(sa.func.min(Alert.created_at), sa.func.max(Alert.created_at)).where(
            col(Alert.digest_id) == digest.id
        )
    ).one()
    reasons = Counter(str(p.get("reason") or "no reason given") for _, p, _ in members)
    digest.payload = {
        "kind": key.kind,
        "provider": key.provider,
        "campaign_id": key.campaign_id,
        "digest": True,
        "count": count,
        "numbers": [n for n, _, _ in members if n],
        "reasons": dict(reasons.most_common(5)),
        "since": _iso(bounds[0]),
        "until": _iso(bounds[1]),
    }
    session.add(digest)
    session.flush()
    return digest.id


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
