"""callback nonces, the parsed event on inbox rows, audit rows found by inbox row

Revision ID: 0004
Revises: 0003 (main's head when this was merged)
Create Date: 2026-12-01 10:00:00.000000

``callback_nonces`` remembers each Plivo nonce with a digest of the request it signed, so a
signature replayed over another body is refused. ``inbox.event`` keeps the callback as the
web view parsed it, so the worker does not parse it again. ``ix_link_events_inbox`` lets
retention keep the inbox rows an audit row cites without scanning the audit log.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.tables

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "callback_nonces",
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("nonce", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("request_digest", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("received_at", models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider", "nonce"),
    )
    with op.batch_alter_table("callback_nonces", schema=None) as batch_op:
        batch_op.create_index("ix_callback_nonces_received", ["received_at"], unique=False)
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event", sa.JSON(), nullable=True))
    # Not batch_alter_table: on SQLite that would copy link_events and drop its triggers.
    op.create_index(
        "ix_link_events_inbox",
        "link_events",
        ["inbox_id"],
        unique=False,
        postgresql_where=sa.text("inbox_id IS NOT NULL"),
        sqlite_where=sa.text("inbox_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_link_events_inbox",
        table_name="link_events",
        postgresql_where=sa.text("inbox_id IS NOT NULL"),
        sqlite_where=sa.text("inbox_id IS NOT NULL"),
    )
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_column("event")
    with op.batch_alter_table("callback_nonces", schema=None) as batch_op:
        batch_op.drop_index("ix_callback_nonces_received")
    op.drop_table("callback_nonces")
