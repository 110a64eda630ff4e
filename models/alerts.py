"""The alert outbox: rows written in the transaction of the change that causes them.

A dedupe key makes one (link, generation, kind) alert at most once, whoever raises it and
however often. Delivery is a separate task (``worker.alerting``) that works on these rows
through the functions below, each of which runs inside the caller's transaction.

Delivery state of one alert row (``Alert.state``)::

    pending --claim--> sending --ok--------------> sent    (or "logged": no ALERT_URLS)
       ^                  |  \\--error, attempts < MAX_ATTEMPTS--> pending (next_attempt_at
       |                  |                                        = now + jittered backoff)
       |                  \\--error, attempts = MAX_ATTEMPTS--> failed (gave up)
       |  (lease expired: the worker died mid-send; claimed again, which may send twice)
       \\-- sending with next_attempt_at in the past
    pending --burst of its (kind, provider, campaign)--> grouped (digest_id = the digest row)

A claim sets ``sending`` and a lease (``next_attempt_at = now + SEND_LEASE``) in its own
committed transaction *before* anything is sent, so two workers never send the same row;
a worker killed mid-send leaves a ``sending`` row whose lease runs out and is claimed again
(at least once: a crash between the send and the commit that records it sends it twice).

Grouping: a (kind, provider, campaign) is *hot* when more than ``GROUP_THRESHOLD`` of its
alerts were raised within ``GROUP_WINDOW`` or more than that many are waiting. The waiting
alerts of a hot group become ``grouped`` members of one digest row (itself an alert that is
delivered like any other), and a hot group gets at most one digest per ``DIGEST_INTERVAL``;
later members wait for the next one. So a bulk failure of 1,000 numbers is at most
``GROUP_THRESHOLD`` single messages plus one digest per minute, while the table keeps one
row per affected link.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from models.db import insert_ignoring_conflicts, is_postgres
from models.statemachine import IN_FLIGHT, AlertKind
from models.tables import Alert, Link, utcnow

# --- delivery states ---------------------------------------------------------------------
PENDING = "pending"
SENDING = "sending"
SENT = "sent"
#: Delivered to the log only, because no ALERT_URLS are configured.
LOGGED = "logged"
FAILED = "failed"
GROUPED = "grouped"
STATES = (PENDING, SENDING, SENT, LOGGED, FAILED, GROUPED)

# --- delivery policy ---------------------------------------------------------------------
MAX_ATTEMPTS = 12
BACKOFF_BASE = timedelta(seconds=10)
BACKOFF_CAP = timedelta(minutes=15)
#: How long a claimed row belongs to the worker that claimed it: above a run's time budget
#: (worker.alerting.RUN_BUDGET), short enough that a killed worker's claims come back soon.
SEND_LEASE = timedelta(seconds=30)

# --- grouping ----------------------------------------------------------------------------
GROUP_THRESHOLD = 5
GROUP_WINDOW = timedelta(seconds=60)
DIGEST_INTERVAL = timedelta(seconds=60)
#: Numbers a digest's text names; its JSON carries up to DIGEST_MAX_NUMBERS.
DIGEST_SAMPLE = 20
DIGEST_MAX_NUMBERS = 1000


def dedupe_key(kind: AlertKind, link: Link | None, extra: str | None = None) -> str:
    parts = [kind.value]
    if link is not None:
        parts += [str(link.id), str(link.generation)]
    if extra:
        parts.append(extra)
    return ":".join(parts)[:255]


def raise_alert(
    session: Session,
    kind: AlertKind,
    *,
    link: Link | None = None,
    reason: str | None = None,
    key_extra: str | None = None,
    payload: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> bool:
    """Add an alert to the outbox unless its dedupe key exists. True if it was added."""
    now = now or utcnow()
    body: dict[str, Any] = {"kind": kind.value, "reason": reason}
    if link is not None:
        body |= {
            "provider": link.provider,
            "number": link.number,
            "campaign_id": link.campaign_id,
            "generation": link.generation,
            "state": link.state,
            "provider_status": link.provider_status,
            # When the link entered its current state (updated_at moves only on changes).
            "since": link.updated_at.isoformat(),
        }
    body |= payload or {}
    values = {
        "kind": kind.value,
        "dedupe_key": dedupe_key(kind, link, key_extra),
        "link_id": link.id if link is not None else None,
        "provider": link.provider if link is not None else body.get("provider"),
        "number": link.number if link is not None else body.get("number"),
        "campaign_id": link.campaign_id if link is not None else body.get("campaign_id"),
        "generation": link.generation if link is not None else None,
        "payload": body,
        "state": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    return insert_ignoring_conflicts(session, Alert, values) is not None


# --- stuck detection ---------------------------------------------------------------------


def detect_stuck(
    session: Session, *, stuck_after: timedelta, now: datetime | None = None, limit: int = 500
) -> int:
    """Raise one ``stuck`` alert per (link, generation) in flight longer than ``stuck_after``.

    Index-friendly: ``state IN (...) AND updated_at < cutoff`` is a range scan of
    ``ix_links_state_updated`` per state, and links already alerted are skipped through the
    unique ``dedupe_key`` index, so repeated runs cost little. Returns alerts raised.
    """
    now = now or utcnow()
    cutoff = now - stuck_after
    key = (
        sa.literal(f"{AlertKind.STUCK.value}:")
        + sa.cast(col(Link.id), sa.String)
        + ":"
        + sa.cast(col(Link.generation), sa.String)
    )
    already = sa.exists().where(col(Alert.dedupe_key) == key)
    stmt = (
        select(Link)
        .where(
            col(Link.state).in_([s.value for s in IN_FLIGHT]),
            col(Link.updated_at) < cutoff,
            ~already,
        )
        .order_by(col(Link.updated_at))
        .limit(limit)
    )
    raised = 0
    for link in session.exec(stmt).all():
        hours = (now - link.updated_at).total_seconds() / 3600
        reason = (
            f"{link.state} since {link.updated_at.isoformat(timespec='seconds')} "
            f"({hours:.1f} h; the threshold is {stuck_after.total_seconds() / 3600:g} h)"
        )
        raised += raise_alert(session, AlertKind.STUCK, link=link, reason=reason, now=now)
    return raised


# --- grouping ----------------------------------------------------------------------------


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


def _key(alert: Alert) -> GroupKey:
    return GroupKey(alert.kind, alert.provider, alert.campaign_id)


def _count(session: Session, *where: sa.ColumnElement[bool]) -> int:
    return int(session.exec(select(sa.func.count()).select_from(Alert).where(*where)).one())


def is_hot(session: Session, key: GroupKey, now: datetime) -> bool:
    """More than GROUP_THRESHOLD alerts raised within GROUP_WINDOW, or waiting."""
    recent = _count(session, *key.where(), col(Alert.created_at) >= now - GROUP_WINDOW)
    if recent > GROUP_THRESHOLD:
        return True
    return _count(session, *key.where(), col(Alert.state) == PENDING) > GROUP_THRESHOLD


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
        .where(col(Alert.state) == PENDING, col(Alert.is_digest).is_(False))
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
    pending = [*key.where(), col(Alert.state) == PENDING]
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
        state=PENDING,
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
        .values(state=GROUPED, digest_id=digest.id, next_attempt_at=None)
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


# --- claiming and finishing ----------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """A claimed alert, detached from any session."""

    id: int
    attempts: int
    kind: str
    provider: str | None
    number: str | None
    campaign_id: str | None
    payload: dict[str, Any]
    is_digest: bool
    created_at: datetime
    delivered_to: tuple[str, ...]


def claim_due(session: Session, *, now: datetime | None = None, limit: int = 50) -> list[Claimed]:
    """Claim due alerts (pending, or sending with an expired lease) for this worker.

    Alerts of a hot group are left for the next digest instead of being sent one by one.
    PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so concurrent workers claim disjoint rows.
    """
    now = now or utcnow()
    stmt = (
        select(Alert)
        .where(col(Alert.state).in_([PENDING, SENDING]), col(Alert.next_attempt_at) <= now)
        .order_by(col(Alert.next_attempt_at), col(Alert.id))
        .limit(limit)
    )
    if is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True)
    rows = session.exec(stmt).all()
    hot: dict[GroupKey, bool] = {}
    claimed: list[Claimed] = []
    for alert in rows:
        key = _key(alert)
        if alert.state == PENDING and not alert.is_digest:
            if key not in hot:
                hot[key] = is_hot(session, key, now)
            if hot[key]:
                continue
        assert alert.id is not None
        alert.state = SENDING
        alert.attempts += 1
        alert.next_attempt_at = now + SEND_LEASE
        session.add(alert)
        claimed.append(
            Claimed(
                id=alert.id,
                attempts=alert.attempts,
                kind=alert.kind,
                provider=alert.provider,
                number=alert.number,
                campaign_id=alert.campaign_id,
                payload=dict(alert.payload),
                is_digest=alert.is_digest,
                created_at=alert.created_at,
                delivered_to=tuple(alert.delivered_to or ()),
            )
        )
    session.flush()
    return claimed


def _finish(session: Session, claim: Claimed, **values: Any) -> bool:
    """Update a row this worker still holds (same state and attempt). False if it lost it."""
    result = session.execute(
        sa.update(Alert)
        .where(
            col(Alert.id) == claim.id,
            col(Alert.state) == SENDING,
            col(Alert.attempts) == claim.attempts,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def mark_delivered(
    session: Session,
    claim: Claimed,
    *,
    delivered_to: Sequence[str],
    logged_only: bool,
    now: datetime | None = None,
) -> bool:
    now = now or utcnow()
    ok = _finish(
        session,
        claim,
        state=LOGGED if logged_only else SENT,
        sent_at=now,
        next_attempt_at=None,
        last_error=None,
        delivered_to=list(delivered_to),
    )
    if ok and claim.is_digest:
        session.execute(
            sa.update(Alert)
            .where(col(Alert.digest_id) == claim.id)
            .values(sent_at=now)
            .execution_options(synchronize_session=False)
        )
    return ok


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Capped exponential backoff with jitter: in [d/2, d], d = min(cap, base * 2^(n-1))."""
    full: timedelta = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempts - 1))
    factor: float = (rng or random).uniform(0.5, 1.0)
    return full * factor


def mark_failed(
    session: Session,
    claim: Claimed,
    *,
    error: str,
    delivered_to: Sequence[str],
    max_attempts: int = MAX_ATTEMPTS,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> str | None:
    """Record a failed attempt: retry later, or give up. The new state, or None if lost."""
    now = now or utcnow()
    gave_up = claim.attempts >= max_attempts
    state = FAILED if gave_up else PENDING
    ok = _finish(
        session,
        claim,
        state=state,
        next_attempt_at=None if gave_up else now + backoff(claim.attempts, rng),
        last_error=error[:2000],
        delivered_to=list(delivered_to),
    )
    return state if ok else None


def release(session: Session, claim: Claimed, *, now: datetime | None = None) -> bool:
    """Hand back a claimed alert that was not attempted (the run ran out of time)."""
    return _finish(
        session,
        claim,
        state=PENDING,
        attempts=claim.attempts - 1,
        next_attempt_at=now or utcnow(),
    )


# --- listing -------------------------------------------------------------------------------


def recent_alerts(
    session: Session,
    *,
    since: datetime | None = None,
    kind: str | None = None,
    limit: int = 200,
) -> Sequence[Alert]:
    """Alerts newest first (``ix_alerts_created``)."""
    stmt = select(Alert)
    if since is not None:
        stmt = stmt.where(col(Alert.created_at) >= since)
    if kind is not None:
        stmt = stmt.where(col(Alert.kind) == kind)
    return session.exec(
        stmt.order_by(col(Alert.created_at).desc(), col(Alert.id).desc()).limit(limit)
    ).all()


# --- message text --------------------------------------------------------------------------

WHAT = {
    AlertKind.LINK_FAILED: "Linking {number} to campaign {campaign} at {provider} FAILED.",
    AlertKind.UNLINK_FAILED: "Unlinking {number} from campaign {campaign} at {provider} FAILED.",
    AlertKind.STUCK: "{number} is stuck in {state} on campaign {campaign} at {provider}.",
    AlertKind.DRIFT: (
        "A poll found {number} {state} on campaign {campaign} at {provider}, which is not what "
        "dlcsync had recorded (drift). dlcsync now records the provider's state."
    ),
    AlertKind.UNKNOWN_STATUS: (
        "{provider} reported a status dlcsync does not know for {number} "
        "(campaign {campaign}); nothing was changed."
    ),
    AlertKind.DELIVERY_FAILED: "A webhook delivery from {provider} could not be processed.",
    AlertKind.CREDENTIALS: "{provider} rejected dlcsync's API credentials.",
    AlertKind.CARRIER_MAPPING_FAILED: (
        "{number} is linked to campaign {campaign} at {provider}, but a carrier's mapping "
        "FAILED: messages to that carrier's subscribers are filtered."
    ),
    AlertKind.CAMPAIGN_EMPTY: "Campaign {campaign} at {provider} has had no linked number.",
    AlertKind.CAMPAIGN_FAILING: "Most link requests on campaign {campaign} at {provider} fail.",
}

NEXT = {
    AlertKind.LINK_FAILED: (
        "Read the provider's reason. Usual causes: the number is not in the account or not on "
        "a messaging profile, or the campaign is not active. Fix that, then request the link "
        "again: dlcsync link --provider {provider} --campaign {campaign} {number}"
    ),
    AlertKind.UNLINK_FAILED: (
        "The number may still send on the campaign. Read the provider's reason, then retry: "
        "dlcsync unlink --provider {provider} {number}; if it fails again, open a ticket with "
        "{provider} naming the number and the campaign."
    ),
    AlertKind.STUCK: (
        "Carrier provisioning normally finishes within 72 h. Poll now with dlcsync reconcile "
        "--campaign {campaign}; check the number in the {provider} console; if the provider "
        "shows it pending too, open a ticket with {provider} naming the number and campaign."
    ),
    AlertKind.DRIFT: (
        "Someone or something changed the number at the provider (console, another tool, a "
        "carrier revert). See dlcsync history {number}; if the change was not intended, "
        "request the link again with dlcsync link."
    ),
    AlertKind.UNKNOWN_STATUS: (
        "Polling goes on and the link keeps its state. Report the status value to the dlcsync "
        "maintainers so it can be mapped (see the provider's changelog)."
    ),
    AlertKind.DELIVERY_FAILED: (
        "Look at the worker logs and the inbox row named below; the link still converges "
        "from polling. Fix the cause if it is a bug or a bad payload."
    ),
    AlertKind.CREDENTIALS: (
        "No request or poll reaches {provider} until this is fixed. Check PLIVO_AUTH_ID and "
        "PLIVO_AUTH_TOKEN or TELNYX_API_KEY (revoked, rotated, typo), then restart the worker."
    ),
    AlertKind.CARRIER_MAPPING_FAILED: (
        "Open a ticket with {provider} naming the number, the campaign and the carrier; they "
        "can re-push the mapping. If it stays FAILED, unlink and link the number again: "
        "dlcsync unlink --provider {provider} {number}, then dlcsync link --provider "
        "{provider} --campaign {campaign} {number}. See dlcsync history {number}."
    ),
    AlertKind.CAMPAIGN_EMPTY: (
        "Link a number to the campaign (dlcsync link --provider {provider} --campaign "
        "{campaign} NUMBER) before the provider's deadline, or deactivate the campaign at "
        "{provider} if it is no longer needed."
    ),
    AlertKind.CAMPAIGN_FAILING: (
        "Stop sending link requests to this campaign and check it at {provider}: its status "
        "(suspended, expired), its number limit, and whether the numbers are in the account "
        "and on a messaging profile. See dlcsync status --campaign {campaign} --state FAILED."
    ),
}

#: Apprise notify types: failures are "failure", the rest "warning".
SEVERITY = {
    AlertKind.LINK_FAILED: "failure",
    AlertKind.UNLINK_FAILED: "failure",
    AlertKind.CREDENTIALS: "failure",
    AlertKind.DELIVERY_FAILED: "failure",
    AlertKind.STUCK: "warning",
    AlertKind.DRIFT: "warning",
    AlertKind.UNKNOWN_STATUS: "warning",
    AlertKind.CARRIER_MAPPING_FAILED: "failure",
    AlertKind.CAMPAIGN_EMPTY: "warning",
    AlertKind.CAMPAIGN_FAILING: "failure",
}


@dataclass(frozen=True)
class Message:
    title: str
    text: str
    #: The machine-readable form (the body sent to JSON endpoints).
    doc: dict[str, Any]
    severity: str


def render(claim: Claimed) -> Message:
    """What happened, to which number and campaign, since when, why, and what to do next."""
    p = claim.payload
    kind = AlertKind(claim.kind)
    fields = {
        "number": claim.number or p.get("number") or "(no number)",
        "campaign": claim.campaign_id or p.get("campaign_id") or "(no campaign)",
        "provider": claim.provider or p.get("provider") or "(no provider)",
        "state": p.get("state") or "",
    }
    numbers: list[str] = list(p.get("numbers") or ([claim.number] if claim.number else []))
    since = p.get("since") or claim.created_at.isoformat()
    next_steps = NEXT[kind].format(**fields)
    doc: dict[str, Any] = {
        "source": "dlcsync",
        "alert_id": claim.id,
        "kind": kind.value,
        "provider": claim.provider or p.get("provider"),
        "campaign_id": claim.campaign_id or p.get("campaign_id"),
        "numbers": numbers,
        "digest": claim.is_digest,
        "since": since,
        "next_steps": next_steps,
    }
    if claim.is_digest:
        count = int(p.get("count") or len(numbers))
        sample = numbers[:DIGEST_SAMPLE]
        more = f" and {count - len(sample):,} more" if count > len(sample) else ""
        reasons = "; ".join(f"{r} ({n})" for r, n in (p.get("reasons") or {}).items())
        title = f"[dlcsync] {count:,} x {kind.value} on campaign {fields['campaign']}"
        lines = [
            f"{count:,} {kind.value} alerts on campaign {fields['campaign']} at "
            f"{fields['provider']} between {p.get('since')} and {p.get('until')}.",
            f"Numbers: {', '.join(sample)}{more}.",
            f"Provider's reasons: {reasons or 'none given'}.",
            f"What to do: {next_steps}",
            "Every affected number: dlcsync alerts --kind "
            f"{kind.value} --json (digest {claim.id}).",
        ]
        doc |= {"count": count, "reasons": p.get("reasons") or {}, "until": p.get("until")}
    else:
        reason = p.get("reason") or "none given"
        status = p.get("provider_status")
        title = f"[dlcsync] {kind.value}: {fields['number']} on campaign {fields['campaign']}"
        label = "Provider's reason" if claim.number else "Reason"
        lines = [
            WHAT[kind].format(**fields),
            f"Number: {fields['number']}; campaign: {fields['campaign']}; "
            f"provider: {fields['provider']}.",
            f"Since: {since}.",
            f"{label}: {reason}" + (f" (status {status})." if status else "."),
            f"What to do: {next_steps}",
        ]
        if p.get("inbox_id") is not None:
            lines.append(f"Inbox row: {p['inbox_id']}.")
        doc |= {
            "count": len(numbers),
            "reason": p.get("reason"),
            "provider_status": status,
            "state": p.get("state") or None,
            "generation": p.get("generation"),
        }
    text = "\n".join(lines)
    doc["title"] = title
    doc["text"] = text
    return Message(title=title, text=text, doc=doc, severity=SEVERITY[kind])
