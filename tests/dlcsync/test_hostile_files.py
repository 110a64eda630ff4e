"""Files in and out of the CLI are hostile: exports cannot carry spreadsheet formulas, and
``--file`` reads regular files only, at most the cap."""

from __future__ import annotations

import csv
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from dlcsync.commands.export import LINK_COLUMNS, spreadsheet_safe
from dlcsync.csvinput import CsvInputError, read_capped, read_numbers
from models.db import transaction
from models.links import apply_observation
from models.statemachine import Direction, Observation, Signal, Source
from tests.dlcsync.conftest import Invoke

FORMULAS = ["=HYPERLINK(\"http://x\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
            "\tindented", "\rreturn"]  # fmt: skip


@pytest.mark.parametrize("text", FORMULAS)
def test_cells_that_a_spreadsheet_would_evaluate_are_quoted(text: str) -> None:
    assert spreadsheet_safe(text) == "'" + text


@pytest.mark.parametrize("text", ["+15551234567", "-1", "plain = text", "", "C1", "'=x"])
def test_other_cells_and_plain_numbers_are_kept(text: str) -> None:
    assert spreadsheet_safe(text) == text


def test_export_neutralises_formulas_from_provider_reasons(
    dlcsync: Invoke, db: sa.Engine, tmp_path: Path
) -> None:
    numbers = [f"+1415555{i:04d}" for i in range(len(FORMULAS))]
    assert dlcsync("link", "--provider", "plivo", "--campaign", "C1", *numbers).exit_code == 0
    for number, reason in zip(numbers, FORMULAS, strict=True):
        failed = Observation(
            source=Source.POLL,
            provider_status="FAILED",
            observed_at=datetime.now(UTC) + timedelta(seconds=1),
            signal=Signal.FAILED,
            direction=Direction.LINK,
            generation=1,
            reason=reason,
        )
        with transaction(db) as s:
            apply_observation(s, "plivo", number, failed)
    for what in ("links", "events"):
        out = tmp_path / f"{what}.csv"
        assert dlcsync("export", what, "--output", str(out)).exit_code == 0
        with out.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        column = "failure_reason" if what == "links" else "reason"
        failed = [r for r in rows if what == "links" or r["to_state"] == "FAILED"]
        reasons = {r["number"]: r[column] for r in failed}
        assert reasons == {n: "'" + f for n, f in zip(numbers, FORMULAS, strict=True)}
        assert all(r["number"].startswith("+1") for r in rows)  # numbers stay E.164
    assert list(LINK_COLUMNS)[1] == "number"


def _in_thread(fn: object, timeout: float = 10) -> object:
    """Run ``fn``; fail (instead of hanging the suite) if it blocks."""
    result: list[object] = []

    def run() -> None:
        try:
            result.append(fn())  # type: ignore[operator]
        except Exception as exc:
            result.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "blocked reading the file"
    return result[0]


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "numbers.csv"
    os.mkfifo(fifo)
    outcome = _in_thread(lambda: read_numbers(fifo))
    assert isinstance(outcome, CsvInputError)
    assert str(outcome) == f"{fifo} is not a regular file (a pipe)"


def test_the_cli_refuses_a_device_and_a_directory_in_one_line(
    dlcsync: Invoke, tmp_path: Path
) -> None:
    device = dlcsync("link", "--provider", "plivo", "--campaign", "C1", "--file", "/dev/null")
    assert device.exit_code == 2
    assert "/dev/null is not a regular file (a device)" in device.output
    assert "Traceback" not in device.output
    folder = dlcsync("link", "--provider", "plivo", "--campaign", "C1", "--file", str(tmp_path))
    assert folder.exit_code == 2 and "Traceback" not in folder.output


def test_at_most_the_cap_is_read_and_a_bigger_file_is_refused_whole(tmp_path: Path) -> None:
    path = tmp_path / "numbers.csv"
    path.write_bytes(b"+12025550100\n" * 10)  # 130 bytes
    assert read_capped(path, limit=130) == b"+12025550100\n" * 10
    with pytest.raises(CsvInputError, match="larger than"):
        read_capped(path, limit=129)
