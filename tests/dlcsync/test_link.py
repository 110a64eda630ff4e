"""``dlcsync link`` / ``unlink``: validation first, one transaction, idempotent, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, func, select

from models.tables import Link, LinkEvent
from tests.dlcsync.conftest import Invoke


def links(db: sa.Engine) -> dict[str, tuple[str, str, int]]:
    with Session(db) as s:
        return {
            link.number: (link.campaign_id, link.state, link.generation)
            for link in s.exec(select(Link).where(Link.provider == "plivo")).all()
        }


def audit_rows(db: sa.Engine) -> int:
    with Session(db) as s:
        return int(s.exec(select(func.count()).select_from(LinkEvent)).one())


def test_link_numbers_given_as_arguments(dlcsync: Invoke, db: sa.Engine) -> None:
    result = dlcsync(
        "link", "--provider", "plivo", "--campaign", "CMP1", "+14155550100", "(415) 555-0101"
    )
    assert result.exit_code == 0, result.output
    assert links(db) == {
        "+14155550100": ("CMP1", "LINK_REQUESTED", 1),
        "+14155550101": ("CMP1", "LINK_REQUESTED", 1),
    }
    with Session(db) as s:
        assert {e.source for e in s.exec(select(LinkEvent)).all()} == {"cli"}
    assert "accepted (new) │ 2" in " ".join(result.output.split())
    assert "dlcsync status --provider plivo --campaign CMP1" in result.output
    assert "dlcsync history NUMBER" in result.output


def test_rejected_arguments_exit_1_and_the_rest_is_recorded(dlcsync: Invoke, db: sa.Engine) -> None:
    result = dlcsync(
        "link", "--provider", "plivo", "--campaign", "CMP1", "+14155550100", "12345", "+14155550100"
    )
    assert result.exit_code == 1
    assert "12345" in result.output
    assert "not a valid US number" in result.output or "not a phone number" in result.output
    assert "duplicate of '+14155550100'" in result.output
    assert list(links(db)) == ["+14155550100"]


def test_asking_again_changes_nothing(dlcsync: Invoke, db: sa.Engine) -> None:
    args = ("link", "--provider", "plivo", "--campaign", "CMP1", "+14155550100")
    assert dlcsync(*args).exit_code == 0
    before = audit_rows(db)
    again = dlcsync(*args)
    assert again.exit_code == 0
    assert audit_rows(db) == before
    assert "Recorded as requests" not in again.output  # nothing new to watch


def test_moving_to_another_campaign_is_a_new_generation(dlcsync: Invoke, db: sa.Engine) -> None:
    dlcsync("link", "--provider", "plivo", "--campaign", "CMP1", "+14155550100")
    assert (
        dlcsync("link", "--provider", "plivo", "--campaign", "CMP2", "+14155550100").exit_code == 0
    )
    assert links(db)["+14155550100"] == ("CMP2", "LINK_REQUESTED", 2)


def test_headerless_and_header_csv(dlcsync: Invoke, db: sa.Engine, tmp_path: Path) -> None:
    plain = tmp_path / "plain.csv"
    plain.write_text("# first batch\n+14155550100\n\n4155550101\n")
    assert (
        dlcsync("link", "--provider", "plivo", "--campaign", "C1", "--file", str(plain)).exit_code
        == 0
    )
    table = tmp_path / "table.csv"
    table.write_text("store,phone_number\nnorth,+14155550102\nsouth,415-555-0103\n")
    assert (
        dlcsync("link", "--provider", "plivo", "--campaign", "C2", "--file", str(table)).exit_code
        == 0
    )
    assert {n: c for n, (c, _s, _g) in links(db).items()} == {
        "+14155550100": "C1",
        "+14155550101": "C1",
        "+14155550102": "C2",
        "+14155550103": "C2",
    }


def test_ten_thousand_lines_with_bad_ones_twice(
    dlcsync: Invoke, db: sa.Engine, tmp_path: Path
) -> None:
    lines = ["number,owner"] + [f"+1415555{i:04d},team{i % 7}" for i in range(10_000)]
    # Bad lines (file line numbers are list index + 1).
    lines[100] = "not-a-number,team"  # line 101
    lines[200] = "+14155550005,team"  # line 201: duplicate of line 7 (+14155550005)
    lines[300] = "+14155550299,team,extra"  # line 301
    lines[400] = "+15550100,team"  # line 401: too short
    lines[500] = "+442071838750,team"  # line 501: not US
    path = tmp_path / "numbers.csv"
    path.write_text("\n".join(lines) + "\n")

    first = dlcsync("link", "--provider", "plivo", "--campaign", "BIG1", "--file", str(path))
    assert first.exit_code == 1
    out = " ".join(first.output.split())
    assert "rejected │ 5" in out
    assert "accepted (new) │ 9,995" in out
    for line, problem in [
        (101, "not a phone number"),
        (201, "duplicate of line 7"),
        (301, "wrong column count: expected 2, got 3"),
        (401, "not a valid US number"),
        (501, "not a US number"),
    ]:
        assert any(
            row.split("│")[1].strip() == str(line) and problem in row
            for row in first.output.splitlines()
            if row.count("│") >= 3
        ), (line, problem, first.output)
    recorded = links(db)
    assert len(recorded) == 9_995
    assert "+14155550099" not in recorded and "+14155550100" in recorded
    rows = audit_rows(db)
    assert rows == 9_995

    second = dlcsync("link", "--provider", "plivo", "--campaign", "BIG1", "--file", str(path))
    assert second.exit_code == 1
    out2 = " ".join(second.output.split())
    assert "accepted (new) │ 0" in out2
    assert "unchanged (already requested/linked) │ 9,995" in out2
    assert audit_rows(db) == rows
    assert links(db) == recorded


def test_dry_run_writes_nothing(dlcsync: Invoke, db: sa.Engine) -> None:
    result = dlcsync(
        "link",
        "--provider",
        "plivo",
        "--campaign",
        "C1",
        "--dry-run",
        "+14155550100",
        "+14155550101",
    )
    assert result.exit_code == 0
    assert "Dry run" in result.output and "would change" in result.output
    assert links(db) == {} and audit_rows(db) == 0

    dlcsync("link", "--provider", "plivo", "--campaign", "C1", "+14155550100")
    before = audit_rows(db)
    unlink = dlcsync("unlink", "--provider", "plivo", "--dry-run", "+14155550100")
    assert unlink.exit_code == 0
    assert "would change │ 1" in " ".join(unlink.output.split())
    assert links(db)["+14155550100"][1] == "LINK_REQUESTED"
    assert audit_rows(db) == before


def test_unlink(dlcsync: Invoke, db: sa.Engine, tmp_path: Path) -> None:
    dlcsync("link", "--provider", "plivo", "--campaign", "C1", "+14155550100", "+14155550101")
    path = tmp_path / "gone.csv"
    path.write_text("+14155550100\n+14155550199\n")
    result = dlcsync("unlink", "--provider", "plivo", "--file", str(path))
    assert result.exit_code == 1
    assert "number is not managed by dlcsync" in result.output
    state = links(db)
    assert state["+14155550100"] == ("C1", "UNLINK_REQUESTED", 2)
    assert state["+14155550101"][1] == "LINK_REQUESTED"


def test_binary_and_non_utf8_files_are_usage_errors(
    dlcsync: Invoke, db: sa.Engine, tmp_path: Path
) -> None:
    binary = tmp_path / "photo.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00")
    latin = tmp_path / "latin1.csv"
    latin.write_bytes("number,name\n+14155550100,Jos\xe9\n".encode("latin-1"))
    for path, problem in ((binary, "is a binary file"), (latin, "is not UTF-8 text")):
        result = dlcsync("link", "--provider", "plivo", "--campaign", "C1", "--file", str(path))
        assert result.exit_code == 2
        assert problem in result.output
        assert "Traceback" not in result.output
    assert links(db) == {}


def test_unconfigured_provider_names_the_variables(dlcsync: Invoke, db: sa.Engine) -> None:
    result = dlcsync("link", "--provider", "telnyx", "--campaign", "C1", "+14155550100")
    assert result.exit_code == 2
    assert "telnyx is not configured" in result.output and "TELNYX_API_KEY" in result.output
    result = dlcsync("unlink", "--provider", "telnyx", "+14155550100")
    assert result.exit_code == 2 and "TELNYX_API_KEY" in result.output
    assert links(db) == {}


def test_usage_errors(dlcsync: Invoke, db: sa.Engine, tmp_path: Path) -> None:
    path = tmp_path / "n.csv"
    path.write_text("+14155550100\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("# nothing\n\n")
    for args in (
        ("link", "--provider", "plivo", "--campaign", "C1"),
        ("link", "--provider", "plivo", "--campaign", "C1", "--file", str(path), "+14155550101"),
        ("link", "--provider", "plivo", "--campaign", "bad campaign!", "+14155550101"),
        ("link", "--provider", "plivo", "--campaign", "C1", "--file", str(tmp_path / "no.csv")),
        ("link", "--provider", "plivo", "--campaign", "C1", "--file", str(empty)),
        ("link", "--provider", "bandwidth", "--campaign", "C1", "+14155550101"),
    ):
        result = dlcsync(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
    assert links(db) == {}


def test_rejected_rows_are_capped(dlcsync: Invoke, db: sa.Engine, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("".join(f"bad{i}\n" for i in range(60)) + "+14155550100\n")
    result = dlcsync("link", "--provider", "plivo", "--campaign", "C1", "--file", str(path))
    assert result.exit_code == 1
    assert "bad49" in result.output and "bad50" not in result.output
    assert "and 10 more rejected" in result.output
    assert list(links(db)) == ["+14155550100"]


def test_database_error_is_one_clear_message(
    dlcsync: Invoke, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'not-migrated.db'}")
    result = dlcsync("link", "--provider", "plivo", "--campaign", "C1", "+14155550100")
    assert result.exit_code == 1
    assert "database error, nothing was written" in result.output
    assert "no such table" in result.output
    assert "Traceback" not in result.output
