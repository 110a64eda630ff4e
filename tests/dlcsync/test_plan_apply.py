"""``dlcsync plan`` and ``dlcsync apply`` on a desired-state CSV (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from models.tables import Link, LinkEvent
from tests.dlcsync.conftest import Invoke

A, B, C, D = "+12025551001", "+12025551002", "+12025551003", "+12025551004"


def write(tmp_path: Path, *lines: str, name: str = "desired.csv") -> str:
    path = tmp_path / name
    path.write_text("provider,number,campaign_id\n" + "".join(f"{x}\n" for x in lines))
    return str(path)


def links(db: sa.Engine) -> dict[str, tuple[str, str, bool]]:
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(Link.number, Link.campaign_id, Link.state, Link.skip_preflight)
        )
        return {n: (c, s, skip) for n, c, s, skip in rows}


def events(db: sa.Engine) -> int:
    with db.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(LinkEvent)).scalar_one())


def test_plan_reports_every_bad_line_and_writes_nothing(
    dlcsync: Invoke, db: sa.Engine, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        f"plivo,{A},CAMP1",
        "plivo,555,CAMP1",
        f"bandwidth,{B},CAMP1",
        f"plivo,{A},CAMP2",
        f"plivo,{A},CAMP1",  # the same declaration twice is harmless
        "plivo,+12025551005",
    )
    result = dlcsync("plan", path)
    assert result.exit_code == 1
    out = result.output
    for line, why in ((3, "not a"), (4, "unknown provider"), (5, "also declared on line 2")):
        assert any(f"{line} " in row and why in row for row in out.splitlines()), (line, out)
    assert "wrong column count" in out
    assert links(db) == {}
    applied = dlcsync("apply", path, "--yes")
    assert applied.exit_code == 1
    assert "nothing was recorded" in applied.output
    assert links(db) == {}


def test_apply_links_moves_prunes_and_a_second_apply_changes_nothing(
    dlcsync: Invoke, db: sa.Engine, tmp_path: Path
) -> None:
    first = write(tmp_path, f"plivo,{A},CAMP1", f"plivo,{B},CAMP1", f"plivo,{C},CAMP1")
    assert dlcsync("apply", first, "--yes").exit_code == 0
    assert {n: v[:2] for n, v in links(db).items()} == {
        A: ("CAMP1", "LINK_REQUESTED"),
        B: ("CAMP1", "LINK_REQUESTED"),
        C: ("CAMP1", "LINK_REQUESTED"),
    }
    # Keep A, move B, leave C out, add D.
    second = write(
        tmp_path, f"plivo,{A},CAMP1", f"plivo,{B},CAMP2", f"plivo,{D},CAMP2", name="second.csv"
    )
    plan = dlcsync("plan", second, "--prune")
    assert plan.exit_code == 0, plan.output
    total = next(row for row in plan.output.splitlines() if "total" in row)
    # link, move, unlink, unchanged
    assert [c for c in total.split() if c.isdigit()] == ["1", "1", "1", "1"]
    before = events(db)
    assert events(db) == before and links(db)[C][1] == "LINK_REQUESTED"  # plan wrote nothing

    result = dlcsync("apply", second, "--prune", "--yes", "--skip-preflight")
    assert result.exit_code == 0, result.output
    now = links(db)
    assert now[A] == ("CAMP1", "LINK_REQUESTED", False)
    assert now[B] == ("CAMP2", "LINK_REQUESTED", True)
    assert now[C][1] == "UNLINK_REQUESTED"
    assert now[D] == ("CAMP2", "LINK_REQUESTED", True)
    after = events(db)
    assert after == before + 3

    again = dlcsync("apply", second, "--prune", "--yes")
    assert again.exit_code == 0
    assert "Nothing to do" in again.output
    assert events(db) == after


def test_apply_without_a_terminal_refuses_unless_yes(
    dlcsync: Invoke, db: sa.Engine, tmp_path: Path
) -> None:
    result = dlcsync("apply", write(tmp_path, f"plivo,{A},CAMP1"))
    assert result.exit_code == 1
    assert "--yes" in result.output
    assert links(db) == {}


def test_a_file_without_the_header_is_one_line_error(dlcsync: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(f"{A},CAMP1\n")
    result = dlcsync("plan", str(path))
    assert result.exit_code == 2
    assert "header provider,number,campaign_id" in result.output
    assert "Traceback" not in result.output
