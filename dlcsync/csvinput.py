"""Reading phone numbers from an operator's CSV file (``dlcsync link --file``), and
desired-state files (``dlcsync plan/apply``: header ``provider,number,campaign_id``).

Two shapes are accepted: one number per line, or a header row naming a ``number`` (or
``phone_number``) column among others, which are ignored. Blank lines and lines starting
with ``#`` are skipped. A line that cannot hold a number (wrong column count) is reported
with its line number; the numbers themselves are checked later by
:func:`models.batch.validate`, which also reports duplicates by line. A file that is not
UTF-8 text at all raises :class:`CsvInputError` with a one-line message.

Only regular files are read (a FIFO, a device such as ``/dev/zero`` or a directory is
refused before any byte is read), and at most :data:`MAX_FILE_BYTES`: a file that is larger
is refused, never read in part.
"""

from __future__ import annotations

import csv
import io
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from models.batch import Entry, NumberResult
from models.desired import BadLine, Desired

NUMBER_COLUMNS = ("number", "phone_number")
#: 64 MiB, about four million numbers: bigger than any sane number list, and keeps a wrong
#: file (a disk image, a log) from filling memory.
MAX_FILE_BYTES = 64 * 1024 * 1024


class CsvInputError(Exception):
    """The file cannot be read as a CSV text file. The message is one line, for people."""


@dataclass
class NumberFile:
    entries: list[Entry] = field(default_factory=list)
    #: Lines rejected before number validation (wrong column count), with line numbers.
    problems: list[NumberResult] = field(default_factory=list)
    header: bool = False


def read_numbers(path: str | Path) -> NumberFile:
    """The numbers in ``path`` with their line numbers, and the lines that hold none."""
    return parse_numbers(read_capped(path), name=str(path))


def read_capped(path: str | Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, else :class:`CsvInputError`.

    Opened without blocking and checked on the open descriptor: a FIFO would otherwise wait
    for a writer forever, and a check by name could be raced by a swapped file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise CsvInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise CsvInputError(f"{path} is not a regular file ({_kind(mode)})")
        try:
            data = f.read(limit + 1)
        except OSError as exc:
            raise CsvInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise CsvInputError(f"{path} is larger than {limit // 2**20} MiB; split it")
    return data


def _kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a pipe"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a file"


def _text(data: bytes, name: str) -> str:
    if b"\x00" in data:
        raise CsvInputError(f"{name} is a binary file, not a CSV text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CsvInputError(
            f"{name} is not UTF-8 text (bad byte 0x{data[exc.start]:02x} on line {line})"
        ) from None


def parse_numbers(data: bytes, *, name: str = "<input>") -> NumberFile:
    text = _text(data, name)
    result = NumberFile()
    column: int | None = None
    width = 1
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for row in reader:
            line = reader.line_num
            cells = [c.strip() for c in row]
            if not any(cells) or cells[0].startswith("#"):
                continue
            if column is None:
                column, width, result.header = _shape(cells)
                if result.header:
                    continue
            if len(cells) != width and not _only_trailing_blanks(cells, width):
                result.problems.append(
                    NumberResult(
                        ",".join(row)[:80],
                        False,
                        f"wrong column count: expected {width}, got {len(cells)}",
                        line=line,
                    )
                )
                continue
            result.entries.append(Entry(cells[column], line=line))
    except csv.Error as exc:
        raise CsvInputError(f"{name} line {reader.line_num}: {exc}") from None
    return result


def _shape(first: list[str]) -> tuple[int, int, bool]:
    """(number column, columns per row, has a header) from the first non-blank row."""
    names = [c.lower() for c in first]
    for wanted in NUMBER_COLUMNS:
        if wanted in names:
            return names.index(wanted), len(first), True
    return 0, 1, False


def _only_trailing_blanks(cells: list[str], width: int) -> bool:
    """``+15551234567,`` (a spreadsheet's trailing comma) still has the right shape."""
    return len(cells) > width and not any(cells[width:])


#: The header of a desired-state file (any order; other columns are ignored).
DESIRED_COLUMNS = ("provider", "number", "campaign_id")


@dataclass
class DesiredFile:
    lines: list[Desired] = field(default_factory=list)
    #: Lines that cannot be read (wrong column count), as bad lines with their reason.
    problems: list[BadLine] = field(default_factory=list)


def read_desired(path: str | Path) -> DesiredFile:
    """The lines of a desired-state CSV; raises CsvInputError when it has no proper header."""
    path = Path(path)
    return parse_desired(read_capped(path), name=str(path))


def parse_desired(data: bytes, *, name: str = "<input>") -> DesiredFile:
    result = DesiredFile()
    columns: list[int] | None = None
    width = 0
    reader = csv.reader(io.StringIO(_text(data, name), newline=""))
    try:
        for row in reader:
            line = reader.line_num
            cells = [c.strip() for c in row]
            if not any(cells) or cells[0].startswith("#"):
                continue
            if columns is None:
                names = [c.lower() for c in cells]
                if not all(c in names for c in DESIRED_COLUMNS):
                    raise CsvInputError(
                        f"{name} line {line}: the first line must be the header "
                        f"{','.join(DESIRED_COLUMNS)}"
                    )
                columns, width = [names.index(c) for c in DESIRED_COLUMNS], len(cells)
                continue
            if len(cells) != width and not _only_trailing_blanks(cells, width):
                reason = f"wrong column count: expected {width}, got {len(cells)}"
                result.problems.append(BadLine(line, ",".join(row)[:80], reason))
                continue
            provider, number, campaign = (cells[i] for i in columns)
            result.lines.append(Desired(provider, number, campaign, line))
    except csv.Error as exc:
        raise CsvInputError(f"{name} line {reader.line_num}: {exc}") from None
    if columns is None:
        raise CsvInputError(f"{name} is empty: expected the header {','.join(DESIRED_COLUMNS)}")
    return result
