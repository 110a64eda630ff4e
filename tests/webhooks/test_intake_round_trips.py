"""The webhook's database work on PostgreSQL: one statement per delivery, sent outside any
transaction (no BEGIN and COMMIT round trips), and what it stored is there for everyone."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from models.tables import InboxItem
from tests.webhooks.web.conftest import app_engine, make_web_app, sign_telnyx, telnyx_callback


def test_a_delivery_is_one_statement_outside_a_transaction(pg_url: str) -> None:
    from psycopg.pq import TransactionStatus

    app = make_web_app(pg_url)
    engine = app_engine(app)
    sent: list[tuple[str, Any]] = []

    def record(conn: sa.Connection, _cursor: Any, statement: str, *_: Any) -> None:
        status = conn.connection.dbapi_connection.info.transaction_status
        sent.append((statement.split()[0], status))

    sa.event.listen(engine, "after_cursor_execute", record)
    try:
        client = app.test_client()
        body = telnyx_callback("+12025550177", "CROUND1", "success", "evt-round-trips")
        first = client.post("/webhooks/telnyx", data=body, headers=sign_telnyx(body))
        again = client.post("/webhooks/telnyx", data=body, headers=sign_telnyx(body))
    finally:
        sa.event.remove(engine, "after_cursor_execute", record)

    assert first.status_code == 200 and first.get_json()["duplicate"] is False
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    # The new delivery: one INSERT; the redelivery: its INSERT finds the row, one UPDATE counts it.
    assert [verb for verb, _ in sent] == ["INSERT", "INSERT", "UPDATE"]
    assert all(status == TransactionStatus.IDLE for _, status in sent), sent
    with Session(engine) as s:
        row = s.exec(
            select(InboxItem).where(InboxItem.dedupe_key.contains("evt-round-trips"))
        ).one()
        assert row.duplicate_deliveries == 1
    engine.dispose()
