"""``dlcsync alerts``: recent alerts and their delivery state, as a table or JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import time_machine
from click.testing import CliRunner

from dlcsync.cli import main
from models.db import make_engine
from tests.worker.alerting.alert_helpers import fail_links, number
from worker.alerting import deliver_alerts

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def cli_db(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[sa.Engine]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "250")
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def run(*args: str) -> str:
    result = CliRunner().invoke(main, ["alerts", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_lists_alerts_with_their_delivery_state(cli_db: sa.Engine) -> None:
    assert "No alerts yet." in run()
    with time_machine.travel(T0, tick=False):
        fail_links(cli_db, [number(1)], now=T0)
        deliver_alerts(cli_db, [])
        fail_links(cli_db, [number(i) for i in range(2, 12)], campaign="BULK", now=T0)
        deliver_alerts(cli_db, [])
    doc = json.loads(run("--json"))
    assert len(doc) == 12  # 11 links and one digest
    by_number = {d["number"]: d for d in doc if d["number"]}
    assert by_number[number(1)]["state"] == "logged"
    assert {by_number[number(i)]["state"] for i in range(2, 12)} == {"grouped"}
    (digest,) = [d for d in doc if d["digest"]]
    assert digest["count"] == 10 and digest["state"] == "logged"
    assert by_number[number(2)]["digest_id"] == digest["id"]
    table = run()
    assert number(1) in table and "digest of 10" in table and f"in digest {digest['id']}" in table


def test_filters_by_kind_and_time(cli_db: sa.Engine) -> None:
    fail_links(cli_db, [number(1)], now=T0)
    fail_links(cli_db, [number(2)], now=T0 + timedelta(hours=2))
    since = (T0 + timedelta(hours=1)).isoformat()
    assert [d["number"] for d in json.loads(run("--json", "--since", since))] == [number(2)]
    assert json.loads(run("--json", "--kind", "stuck")) == []
    assert "No alerts match." in run("--kind", "drift")
