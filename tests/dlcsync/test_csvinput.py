"""Reading number files: shapes, skipped lines, bad lines with line numbers, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlcsync.csvinput import CsvInputError, parse_numbers, read_numbers


def test_headerless_one_number_per_line_skips_blanks_and_comments() -> None:
    parsed = parse_numbers(b"# my numbers\n+14155550100\n\n  \n4155550101\n# end\n")
    assert not parsed.header
    assert [(e.raw, e.line) for e in parsed.entries] == [("+14155550100", 2), ("4155550101", 5)]
    assert parsed.problems == []


def test_header_with_number_column_ignores_other_columns() -> None:
    data = 'name,Phone_Number,notes\r\nshop,+14155550100,a\r\nhq,(415) 555-0101,"x, y"\r\n'
    parsed = parse_numbers(data.encode())
    assert parsed.header
    assert [(e.raw, e.line) for e in parsed.entries] == [
        ("+14155550100", 2),
        ("(415) 555-0101", 3),
    ]


def test_utf8_bom_and_number_header() -> None:
    parsed = parse_numbers("\ufeffnumber\n+14155550100\n".encode())
    assert parsed.header and [e.raw for e in parsed.entries] == ["+14155550100"]


def test_wrong_column_count_is_reported_with_its_line() -> None:
    parsed = parse_numbers(b"+14155550100\n+14155550101,extra\n+14155550102,\n")
    assert [e.raw for e in parsed.entries] == ["+14155550100", "+14155550102"]
    [problem] = parsed.problems
    assert problem.line == 2
    assert problem.reason == "wrong column count: expected 1, got 2"


def test_header_rows_must_have_the_header_width() -> None:
    parsed = parse_numbers(b"number,name\n+14155550100\n+14155550101,b\n")
    assert [p.line for p in parsed.problems] == [2]
    assert [e.line for e in parsed.entries] == [3]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
        (b"+14155550100\n+1415555\xff\xfe0101\n", "not UTF-8 text (bad byte 0xff on line 2)"),
        ("number\n+14155550100\n".encode("utf-16"), "binary file"),
    ],
)
def test_files_that_are_not_text_raise_one_line_errors(data: bytes, message: str) -> None:
    with pytest.raises(CsvInputError) as err:
        parse_numbers(data, name="f.csv")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(CsvInputError, match="cannot read"):
        read_numbers(tmp_path / "missing.csv")
