"""outbound event outbox and deliveries; per-carrier mapping status and its history

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 10:00:00.000000

``event_outbox`` gets one row per audit row in the audit row's transaction, from a trigger
on ``link_events`` (so no writer of audit rows can forget it); the delivery task fans each
out into one ``event_deliveries`` row per EVENT_WEBHOOK_URLS entry.
``links.carrier_mapping`` holds Telnyx's per-carrier mapping statuses, and
``mapping_changes`` their history (apart from the audit log: not a state change).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.tables

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

String = sqlmodel.sql.sqltypes.AutoString
Time = models.tables.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("carrier_mapping", sa.JSON(), nullable=True))

    op.create_table(
        "event_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("created_at", Time(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["link_events.id"]),
        sa.ForeignKeyConstraint(["link_id"], ["links.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION link_events_outbox() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN INSERT INTO event_outbox (event_id, link_id, created_at)"
            " VALUES (NEW.id, NEW.link_id, NEW.recorded_at); RETURN NULL; END $$"
        )
        op.execute(
            "CREATE TRIGGER link_events_outbox AFTER INSERT ON link_events"
            " FOR EACH ROW EXECUTE FUNCTION link_events_outbox()"
        )
    else:
        op.execute(
            "CREATE TRIGGER link_events_outbox AFTER INSERT ON link_events BEGIN"
            " INSERT INTO event_outbox (event_id, link_id, created_at)"
            " VALUES (NEW.id, NEW.link_id, NEW.recorded_at); END"
        )
    op.create_table(
        "event_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url_key", String(length=16), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("state", String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", Time(timezone=True), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", String(length=2000), nullable=True),
        sa.Column("created_at", Time(timezone=True), nullable=False),
        sa.Column("delivered_at", Time(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["event_id"], ["link_events.id"]),
        sa.ForeignKeyConstraint(["link_id"], ["links.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("url_key", "event_id", name="uq_event_deliveries_url_event"),
    )
    with op.batch_alter_table("event_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_event_deliveries_due", ["state", "next_attempt_at"])
        batch_op.create_index("ix_event_deliveries_order", ["url_key", "link_id", "event_id"])
        batch_op.create_index("ix_event_deliveries_event", ["event_id"])

    op.create_table(
        "mapping_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("provider", String(length=32), nullable=False),
        sa.Column("number", String(length=20), nullable=False),
        sa.Column("campaign_id", String(length=64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("carrier", String(length=32), nullable=False),
        sa.Column("from_status", String(length=32), nullable=True),
        sa.Column("to_status", String(length=32), nullable=False),
        sa.Column("source", String(length=16), nullable=False),
        sa.Column("recorded_at", Time(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["link_id"], ["links.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("mapping_changes", schema=None) as batch_op:
        batch_op.create_index("ix_mapping_changes_link", ["link_id", "recorded_at", "id"])


def downgrade() -> None:
    with op.batch_alter_table("mapping_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_mapping_changes_link")
    op.drop_table("mapping_changes")
    with op.batch_alter_table("event_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_event_deliveries_event")
        batch_op.drop_index("ix_event_deliveries_order")
        batch_op.drop_index("ix_event_deliveries_due")
    op.drop_table("event_deliveries")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER link_events_outbox ON link_events")
        op.execute("DROP FUNCTION link_events_outbox()")
    else:
        op.execute("DROP TRIGGER link_events_outbox")
    op.drop_table("event_outbox")
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.drop_column("carrier_mapping")
