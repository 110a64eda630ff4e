"""alert digests and per-URL delivery

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 10:00:00.000000

Alerts of one kind on one campaign that arrive in a burst are delivered as one digest row;
the member rows point at it (``digest_id``). ``delivered_to`` remembers which ALERT_URLS an
alert already reached, so a retry after a partial failure does not send it twice.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("is_digest", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("digest_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("delivered_to", sa.JSON(), nullable=True))
        batch_op.create_foreign_key("fk_alerts_digest_id", "alerts", ["digest_id"], ["id"])
        batch_op.create_index("ix_alerts_digest", ["digest_id"], unique=False)
        batch_op.create_index(
            "ix_alerts_group", ["kind", "provider", "campaign_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_group")
        batch_op.drop_index("ix_alerts_digest")
        batch_op.drop_constraint("fk_alerts_digest_id", type_="foreignkey")
        batch_op.drop_column("delivered_to")
        batch_op.drop_column("digest_id")
        batch_op.drop_column("is_digest")
