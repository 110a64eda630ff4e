"""``dlcsync status``, ``history`` and ``export``."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from dlcsync.commands.export import EVENT_COLUMNS, LINK_COLUMNS, stream_rows
from models.db import transaction
from models.links import apply_observation
from models.reports import links_page
from models.statemachine import Direction, Observation, Signal, Source
from tests.dlcsync.conftest import Invoke

NUMBERS = [f"+1415555{i:04d}" for i in range(25)]


def seed(dlcsync: Invoke, db: sa.Engine) -> None:
    """25 numbers on campaign C1, 3 on C2; one of C1 failed at the provider."""
    assert dlcsync("link", "--provider", "plivo", "--campaign", "C1", *NUMBERS[:22]).exit_code == 0
    assert dlcsync("link", "--provider", "plivo", "--campaign", "C2", *NUMBERS[22:]).exit_code == 0
    failed = Observation(
        source=Source.POLL,
        provider_status="FAILED",
        observed_at=datetime.now(UTC) + timedelta(seconds=1),
        signal=Signal.FAILED,
        direction=Direction.LINK,
        generation=1,
        reason="Brand not approved",
    )
    with transaction(db) as s:
        apply_observation(s, "plivo", NUMBERS[0], failed)


def test_status_counts_and_problems(dlcsync: Invoke, db: sa.Engine) -> None:
    assert "No links yet" in dlcsync("status").output
    seed(dlcsync, db)
    result = dlcsync("status")
    assert result.exit_code == 0
    rows = [" ".join(r.replace("│", " ").split()) for r in result.output.splitlines()]
    assert "plivo C1 FAILED 1" in rows
    assert "plivo C1 LINK_REQUESTED 21" in rows
    assert "plivo C2 LINK_REQUESTED 3" in rows
    assert "total 25" in rows
    assert any(NUMBERS[0] in r and "failed" in r and "Brand not approved" in r for r in rows)

    only = dlcsync("status", "--campaign", "C2")
    assert "C1" not in only.output and "total" in only.output

    doc = json.loads(dlcsync("status", "--json", "--state", "failed").output)
    assert doc["counts"] == [
        {"provider": "plivo", "campaign_id": "C1", "state": "FAILED", "count": 1}
    ]
    assert [(p["number"], p["kind"], p["reason"]) for p in doc["problems"]] == [
        (NUMBERS[0], "failed", "Brand not approved")
    ]
    assert "No links match" in dlcsync("status", "--provider", "telnyx").output


def test_history(dlcsync: Invoke, db: sa.Engine) -> None:
    seed(dlcsync, db)
    result = dlcsync("history", "(415) 555-0000")
    assert result.exit_code == 0
    out = result.output
    assert f"{NUMBERS[0]} at plivo: FAILED" in out
    for header in ("from", "to", "generation", "campaign", "source", "provider status", "reason"):
        assert header in out
    first, second = out.index("LINK_REQUESTED │"), out.index("Brand not approved")
    assert first < second  # oldest first
    assert "cli" in out and "poll" in out

    doc = json.loads(dlcsync("history", NUMBERS[0], "--json").output)
    assert [(e["from_state"], e["to_state"], e["source"]) for e in doc] == [
        (None, "LINK_REQUESTED", "cli"),
        ("LINK_REQUESTED", "FAILED", "poll"),
    ]
    assert doc[1]["reason"] == "Brand not approved" and doc[1]["provider_status"] == "FAILED"


def test_history_of_unknown_or_invalid_number(dlcsync: Invoke, db: sa.Engine) -> None:
    unknown = dlcsync("history", "+14155559999")
    assert unknown.exit_code == 1
    assert "No history for +14155559999" in unknown.output
    assert dlcsync("history", "+14155550000", "--provider", "telnyx").exit_code == 1
    invalid = dlcsync("history", "12")
    assert invalid.exit_code == 2 and "Traceback" not in invalid.output


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_export_links_in_small_chunks(dlcsync: Invoke, db: sa.Engine) -> None:
    seed(dlcsync, db)
    rows = read_csv(dlcsync("export", "links", "--chunk-size", "4").output)
    assert rows[0] == list(LINK_COLUMNS)
    assert [r[1] for r in rows[1:]] == NUMBERS  # id order = request order
    by_number = {r[1]: dict(zip(LINK_COLUMNS, r, strict=True)) for r in rows[1:]}
    assert by_number[NUMBERS[0]]["state"] == "FAILED"
    assert by_number[NUMBERS[0]]["failure_reason"] == "Brand not approved"
    assert by_number[NUMBERS[24]]["campaign_id"] == "C2"

    c2 = read_csv(dlcsync("export", "links", "--campaign", "C2", "--chunk-size", "2").output)
    assert [r[1] for r in c2[1:]] == NUMBERS[22:]
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert read_csv(dlcsync("export", "links", "--since", future).output) == [list(LINK_COLUMNS)]


def test_export_events_to_a_file(dlcsync: Invoke, db: sa.Engine, tmp_path: Path) -> None:
    seed(dlcsync, db)
    out = tmp_path / "events.csv"
    result = dlcsync("export", "events", "--output", str(out), "--chunk-size", "3")
    assert result.exit_code == 0
    rows = read_csv(out.read_text())
    assert rows[0] == list(EVENT_COLUMNS)
    assert len(rows) == 1 + 26
    ids = [int(r[0]) for r in rows[1:]]
    assert ids == sorted(ids) and len(set(ids)) == 26
    assert rows[-1][6] == "FAILED" and rows[-1][11] == "Brand not approved"
    until = read_csv(dlcsync("export", "events", "--until", "2000-01-01").output)
    assert until == [list(EVENT_COLUMNS)]
    assert dlcsync("export", "events", "--since", "yesterday").exit_code == 2


def test_export_reads_one_page_at_a_time(dlcsync: Invoke, db: sa.Engine) -> None:
    seed(dlcsync, db)
    pages: list[int] = []

    def fetch(session, after_id):  # type: ignore[no-untyped-def]
        page = links_page(session, after_id=after_id, limit=4)
        pages.append(len(page))
        return page

    rows = stream_rows(db, fetch, LINK_COLUMNS)
    first = next(rows)
    assert first[1] == NUMBERS[0] and pages == [4]  # nothing read beyond the first page yet
    assert len(list(rows)) == 24
    assert pages == [4, 4, 4, 4, 4, 4, 1, 0]
