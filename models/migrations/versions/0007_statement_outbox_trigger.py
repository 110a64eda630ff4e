"""event outbox trigger per statement on PostgreSQL

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 12:00:00.000000

0005's trigger ran once per ``link_events`` row: a 10,000-row audit INSERT (``dlcsync link
--file``) paid 10,000 PL/pgSQL calls and single-row INSERTs (0.06 s -> 0.28 s). On PostgreSQL
it becomes one trigger per statement that inserts every new audit row's outbox row at once,
from the statement's transition table, in audit id order (so per-number order holds).
SQLite has no transition tables; its row trigger (plain SQL, no procedure call) stays.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER link_events_outbox ON link_events")
    op.execute(
        "CREATE OR REPLACE FUNCTION link_events_outbox() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN INSERT INTO event_outbox (event_id, link_id, created_at)"
        " SELECT id, link_id, recorded_at FROM new_events ORDER BY id; RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER link_events_outbox AFTER INSERT ON link_events"
        " REFERENCING NEW TABLE AS new_events"
        " FOR EACH STATEMENT EXECUTE FUNCTION link_events_outbox()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER link_events_outbox ON link_events")
    op.execute(
        "CREATE OR REPLACE FUNCTION link_events_outbox() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN INSERT INTO event_outbox (event_id, link_id, created_at)"
        " VALUES (NEW.id, NEW.link_id, NEW.recorded_at); RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER link_events_outbox AFTER INSERT ON link_events"
        " FOR EACH ROW EXECUTE FUNCTION link_events_outbox()"
    )
