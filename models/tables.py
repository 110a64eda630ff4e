"""The tables: links, link_events (append-only audit), inbox, alerts; dashboard logins; the
outbound event outbox and deliveries (``event_outbox``, ``event_deliveries``); per-carrier
mapping history (``mapping_changes``); jobs (background operations such as an adoption
started through the API) and campaign_limits (the operator's number caps for the pre-flight
check).

States are stored as plain strings (the values of :class:`models.statemachine.State`), so
adding a state never needs an enum migration. Times are always timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware on PostgreSQL; naive UTC on SQLite, read back as aware UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; dlcsync stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Link(SQLModel, table=True):
    """One row per (provider, E.164 number): the current state dlcsync believes."""

    __tablename__ = "links"
    __table_args__ = (
        sa.UniqueConstraint("provider", "number", name="uq_links_provider_number"),
        sa.Index("ix_links_due", "next_poll_at"),
        sa.Index("ix_links_campaign_state", "provider", "campaign_id", "state"),
        sa.Index("ix_links_state_updated", "state", "updated_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=32)
    number: str = Field(max_length=20)
    campaign_id: str = Field(max_length=64)
    #: The campaign a number leaves when it is moved (Plivo: unlinked before the new link).
    prior_campaign_id: str | None = Field(default=None, max_length=64)
    state: str = Field(max_length=32)
    generation: int = 1
    direction: str = Field(max_length=8)
    provider_status: str | None = Field(default=None, max_length=64)
    failure_reason: str | None = Field(default=None, max_length=2000)
    drift: bool = False
    observed_at: datetime = Field(sa_type=UTCDateTime(), nullable=False)
    generation_started_at: datetime = Field(sa_type=UTCDateTime(), nullable=False)
    #: Durable time: when this link should next be polled (or its request (re)sent).
    next_poll_at: datetime | None = Field(default=None, sa_type=UTCDateTime(), nullable=True)
    poll_attempts: int = 0
    request_attempts: int = 0
    #: A request timed out: it may have reached the provider, so GET before sending again.
    needs_check: bool = False
    last_error: str | None = Field(default=None, max_length=2000)
    #: The operator said to send this generation's link without the pre-flight checks.
    skip_preflight: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    #: Telnyx per-carrier mapping, e.g. {"tmobile": "ADDED", "non_tmobile": "PENDING"}.
    carrier_mapping: dict[str, str] | None = Field(default=None, sa_type=sa.JSON())
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)


class LinkEvent(SQLModel, table=True):
    """The audit log: one row per applied change. Append-only (a trigger refuses the rest)."""

    __tablename__ = "link_events"
    __table_args__ = (
        sa.Index("ix_link_events_link", "link_id", "recorded_at", "id"),
        sa.Index("ix_link_events_recorded", "recorded_at", "id"),
        # Retention keeps the inbox rows an audit row cites: found through this index.
        sa.Index(
            "ix_link_events_inbox",
            "inbox_id",
            postgresql_where=sa.text("inbox_id IS NOT NULL"),
            sqlite_where=sa.text("inbox_id IS NOT NULL"),
        ),
        # At most one audit row per (link, generation, to-state), drift aside: a redelivered
        # task or a duplicate webhook cannot write a second one even if the CAS were bypassed.
        sa.Index(
            "uq_link_events_transition",
            "link_id",
            "generation",
            "to_state",
            unique=True,
            postgresql_where=sa.text("NOT drift"),
            sqlite_where=sa.text("NOT drift"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    link_id: int = Field(foreign_key="links.id")
    provider: str = Field(max_length=32)
    number: str = Field(max_length=20)
    campaign_id: str = Field(max_length=64)
    generation: int
    from_state: str | None = Field(default=None, max_length=32)
    to_state: str = Field(max_length=32)
    source: str = Field(max_length=16)
    provider_status: str | None = Field(default=None, max_length=64)
    provider_time: datetime | None = Field(default=None, sa_type=UTCDateTime(), nullable=True)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    reason: str | None = Field(default=None, max_length=2000)
    drift: bool = False
    inbox_id: int | None = Field(default=None, foreign_key="inbox.id")


class InboxItem(SQLModel, table=True):
    """Every accepted webhook delivery, stored before the 2xx."""

    __tablename__ = "inbox"
    __table_args__ = (
        sa.UniqueConstraint("provider", "dedupe_key", name="uq_inbox_provider_dedupe"),
        sa.Index(
            "ix_inbox_unprocessed",
            "received_at",
            postgresql_where=sa.text("outcome IS NULL"),
            sqlite_where=sa.text("outcome IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=32)
    dedupe_key: str = Field(max_length=255)
    body: bytes = Field(sa_type=sa.LargeBinary())
    #: The kept request headers (signatures as digests) and ``:method``/``:url``/``:query``.
    headers: dict[str, str] = Field(default_factory=dict, sa_type=sa.JSON())
    #: The callback as the web view verified and parsed it (``providers.delivery``); ``None``
    #: on rows stored before 0005, which the worker parses from ``body`` and ``headers``.
    event: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON(), nullable=True)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    #: Further deliveries of the same event (answered 200, nothing new stored).
    duplicate_deliveries: int = 0
    #: ``None`` until processed; then a Verdict value or "failed".
    outcome: str | None = Field(default=None, max_length=16)
    reason: str | None = Field(default=None, max_length=2000)
    attempts: int = 0
    error: str | None = Field(default=None, max_length=2000)
    processed_at: datetime | None = Field(default=None, sa_type=UTCDateTime(), nullable=True)


class CallbackNonce(SQLModel, table=True):
    """Nonces of signed callbacks already received (Plivo), with what they signed.

    A nonce arriving again with another request is a replay of its signature over a forged
    body (a V2 signature covers only the URL and the nonce) and is refused.
    """

    __tablename__ = "callback_nonces"
    __table_args__ = (sa.Index("ix_callback_nonces_received", "received_at"),)

    provider: str = Field(max_length=32, primary_key=True)
    nonce: str = Field(max_length=255, primary_key=True)
    #: SHA-256 (hex) of the method, URL and body the nonce first came with.
    request_digest: str = Field(max_length=64)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)


class Alert(SQLModel, table=True):
    """The alert outbox, written in the transaction of the change that causes the alert."""

    __tablename__ = "alerts"
    __table_args__ = (
        sa.Index("ix_alerts_pending", "state", "next_attempt_at"),
        sa.Index("ix_alerts_created", "created_at"),
        # Grouping counts one (kind, provider, campaign)'s recent alerts and finds its last digest.
        sa.Index("ix_alerts_group", "kind", "provider", "campaign_id", "created_at"),
        sa.Index("ix_alerts_digest", "digest_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    dedupe_key: str = Field(max_length=255, unique=True)
    link_id: int | None = Field(default=None, foreign_key="links.id")
    provider: str | None = Field(default=None, max_length=32)
    number: str | None = Field(default=None, max_length=20)
    campaign_id: str | None = Field(default=None, max_length=64)
    generation: int | None = None
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON())
    #: pending -> sending -> sent | logged (no ALERT_URLS) | pending (retry) | failed (gave
    #: up); "grouped" when delivered inside the digest ``digest_id`` (see models.alerts).
    state: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime(), nullable=True)
    last_error: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime(), nullable=True)
    #: A digest row stands for many alerts of one kind on one campaign (its members point here).
    is_digest: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    digest_id: int | None = Field(default=None, foreign_key="alerts.id")
    #: Fingerprints of the ALERT_URLS already delivered to, so a retry skips them.
    delivered_to: list[str] | None = Field(default=None, sa_type=sa.JSON())


class EventOutbox(SQLModel, table=True):
    """One row per audit row, written by a trigger on ``link_events`` in the audit row's
    transaction (migration 0005; see models.events).

    Rows are consumed (fanned out to one delivery per URL, then deleted) by the delivery
    task, so the table holds only what has not been fanned out yet.
    """

    __tablename__ = "event_outbox"

    id: int | None = Field(default=None, primary_key=True)
    #: No foreign keys (migration 0008): the trigger copies both from the audit row it follows,
    #: and neither parent is ever deleted, so the checks could not fail and cost the most.
    event_id: int = Field(unique=True)
    link_id: int
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)


class EventDelivery(SQLModel, table=True):
    """Delivery of one event to one EVENT_WEBHOOK_URLS entry (``url_key`` = its fingerprint)."""

    __tablename__ = "event_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("url_key", "event_id", name="uq_event_deliveries_url_event"),
        sa.Index("ix_event_deliveries_due", "state", "next_attempt_at"),
        # Per-number order: the earliest open delivery of (url, link) goes first.
        sa.Index("ix_event_deliveries_order", "url_key", "link_id", "event_id"),
        sa.Index("ix_event_deliveries_event", "event_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    url_key: str = Field(max_length=16)
    event_id: int = Field(foreign_key="link_events.id")
    link_id: int = Field(foreign_key="links.id")
    #: pending -> sending -> delivered | pending (retry) | rejected (4xx) | failed (gave up)
    state: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime(), nullable=True)
    last_status: int | None = None
    last_error: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime(), nullable=True)


class MappingChange(SQLModel, table=True):
    """History of a link's per-carrier mapping status (Telnyx), one row per carrier change.

    Kept apart from ``link_events``: a mapping change while ASSIGNED is not a state change,
    and the audit log keeps exactly one row per state change.
    """

    __tablename__ = "mapping_changes"
    __table_args__ = (sa.Index("ix_mapping_changes_link", "link_id", "recorded_at", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    link_id: int = Field(foreign_key="links.id")
    provider: str = Field(max_length=32)
    number: str = Field(max_length=20)
    campaign_id: str = Field(max_length=64)
    generation: int
    carrier: str = Field(max_length=32)
    from_status: str | None = Field(default=None, max_length=32)
    to_status: str = Field(max_length=32)
    source: str = Field(max_length=16)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)


class DashboardSession(SQLModel, table=True):
    """A dashboard login. The cookie carries a random token; only its SHA-256 is stored here,
    so logging out (deleting the row) ends the session even if the cookie is kept."""

    __tablename__ = "dashboard_sessions"
    __table_args__ = (sa.Index("ix_dashboard_sessions_expires", "expires_at"),)

    #: SHA-256 (hex) of the token in the cookie.
    id: str = Field(primary_key=True, max_length=64)
    #: Which API_TOKEN opened it: rotating the token ends every session.
    token_fingerprint: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime(), nullable=False)


class LoginFailure(SQLModel, table=True):
    """One failed dashboard login, kept for the throttle window (shared by every web worker)."""

    __tablename__ = "login_failures"
    __table_args__ = (sa.Index("ix_login_failures_client", "client", "failed_at"),)

    id: int | None = Field(default=None, primary_key=True)
    #: The client address (an IPv6 address's /64 network).
    client: str = Field(max_length=64)
    failed_at: datetime = Field(sa_type=UTCDateTime(), nullable=False)


class Job(SQLModel, table=True):
    """A long operation run by the worker (``POST /api/v1/adopt``): its progress and summary."""

    __tablename__ = "jobs"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)
    #: queued -> running -> done | failed
    state: str = Field(default="queued", max_length=16)
    params: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON())
    progress: int = 0
    total: int | None = None
    summary: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON())
    error: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)


class CampaignLimit(SQLModel, table=True):
    """The operator's cap on a campaign's numbers (``dlcsync campaign set --max-numbers``)."""

    __tablename__ = "campaign_limits"
    __table_args__ = (
        sa.UniqueConstraint("provider", "campaign_id", name="uq_campaign_limits_campaign"),
    )

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=32)
    campaign_id: str = Field(max_length=64)
    max_numbers: int
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
