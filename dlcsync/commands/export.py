"""``dlcsync export links|events``: CSV, streamed a page at a time.

Cells are neutralised for spreadsheets: a text that starts with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return is written with a leading ``'``, so a reason or campaign id that came
from a provider or an operator (``=HYPERLINK(...)``) opens as text, never as a formula
(OWASP "CSV injection"). Values that are plain numbers (``+15551234567``, ``-1``) are left as
they are: they cannot be formulas, and numbers must stay E.164.

Rows are read by keyset pagination on the id, one short transaction per page, and written
as they come: memory stays at one page however many rows there are, and a long export
never holds a lock that the web or the worker would wait for.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import IO, Any

import click
import sqlalchemy as sa
from sqlmodel import Session

from common.settings import Settings
from dlcsync.commands._common import IsoTime, engine_of, iso, provider_option
from models.history import events
from models.reports import links_page
from models.tables import Link, LinkEvent

CHUNK = 5000

LINK_COLUMNS = (
    "provider",
    "number",
    "campaign_id",
    "state",
    "generation",
    "provider_status",
    "failure_reason",
    "drift",
    "created_at",
    "updated_at",
)
EVENT_COLUMNS = (
    "id",
    "provider",
    "number",
    "campaign_id",
    "generation",
    "from_state",
    "to_state",
    "source",
    "provider_status",
    "provider_time",
    "recorded_at",
    "reason",
    "drift",
)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+")


def spreadsheet_safe(text: str) -> str:
    """``text``, prefixed with ``'`` when a spreadsheet would read it as a formula."""
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if value is None:
        return ""
    if isinstance(value, str):
        return spreadsheet_safe(value)
    return value


def stream_rows(
    engine: sa.Engine,
    fetch: Callable[[Session, int], Sequence[Link] | Sequence[LinkEvent]],
    columns: Sequence[str],
) -> Iterator[list[Any]]:
    """Rows of ``columns``, a page per transaction; ``fetch(session, after_id)`` pages."""
    after_id = 0
    while True:
        with Session(engine) as session:
            page = fetch(session, after_id)
            rows = [[_cell(getattr(obj, c)) for c in columns] for obj in page]
            after_id = (page[-1].id or 0) if page else after_id
            count = len(page)
        yield from rows
        if count == 0:
            return


@click.command("export")
@click.argument("what", type=click.Choice(["links", "events"]))
@click.option(
    "--since", type=IsoTime(), help="From this time (links: updated_at; events: recorded_at)."
)
@click.option("--until", type=IsoTime(), help="Before this time.")
@provider_option
@click.option("--campaign", help="Only this campaign.")
@click.option(
    "--output",
    "-o",
    type=click.File("w", encoding="utf-8", lazy=True),
    default="-",
    help="Write here instead of stdout.",
)
@click.option("--chunk-size", type=click.IntRange(1, 100_000), default=CHUNK, hidden=True)
@click.pass_obj
def export(
    settings: Settings,
    what: str,
    since: datetime | None,
    until: datetime | None,
    provider: str | None,
    campaign: str | None,
    output: IO[str],
    chunk_size: int,
) -> None:
    """Write links or audit events as CSV (header row first)."""
    provider = provider.lower() if provider else None
    columns = LINK_COLUMNS if what == "links" else EVENT_COLUMNS

    def fetch(session: Session, after_id: int) -> Sequence[Link] | Sequence[LinkEvent]:
        if what == "links":
            return links_page(
                session,
                after_id=after_id,
                limit=chunk_size,
                provider=provider,
                campaign_id=campaign,
                since=since,
                until=until,
            )
        return events(
            session,
            after_id=after_id,
            limit=chunk_size,
            provider=provider,
            campaign_id=campaign,
            since=since,
            until=until,
        )

    # CRLF (RFC 4180): with "\n" alone, the csv module leaves a field holding "\r" unquoted,
    # and a provider's reason with a carriage return would split its row in two.
    writer = csv.writer(output, lineterminator="\r\n")
    with engine_of(settings) as engine:
        rows = stream_rows(engine, fetch, columns)
        first = next(rows, None)  # the database answers before anything is written
        writer.writerow(columns)
        if first is not None:
            writer.writerow(first)
            writer.writerows(rows)
