"""``dlcsync link`` and ``dlcsync unlink``: record operator requests for many numbers.

The CLI only records intents (LINK_REQUESTED / UNLINK_REQUESTED); the worker sends them to
the provider. Validation and recording are :mod:`models.batch`'s: every number is checked
before anything is written, and everything valid is recorded in one transaction, so bad
input never half-applies. Asking again for what is already requested changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import click
import sqlalchemy as sa
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text
from sqlmodel import Session

from common.settings import Settings
from dlcsync.commands._common import (
    MAX_ROWS,
    PROVIDERS,
    console,
    engine_of,
    explain_failure,
    require_provider,
)
from dlcsync.csvinput import CsvInputError, read_numbers
from models.batch import Entry, NumberResult, link_numbers, unlink_numbers, validate
from models.links import ConcurrentChange, retry_concurrent
from models.numbers import check_campaign_id
from models.statemachine import Source

#: Show a progress bar above this many numbers.
PROGRESS_OVER = 200
#: Numbers recorded per call (the progress bar moves between chunks; one transaction).
CHUNK = 500

F = TypeVar("F", bound=Callable[..., object])

#: Records a chunk of already validated, distinct entries in ``session``.
Recorder = Callable[[Session, Sequence[Entry]], list[NumberResult]]


@dataclass(frozen=True)
class Outcome:
    results: list[NumberResult]

    @property
    def new(self) -> list[NumberResult]:
        return [r for r in self.results if r.accepted and r.changed]

    @property
    def unchanged(self) -> list[NumberResult]:
        return [r for r in self.results if r.accepted and not r.changed]

    @property
    def rejected(self) -> list[NumberResult]:
        return [r for r in self.results if not r.accepted]


def _numbers_options(f: F) -> F:
    f = click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")(f)
    f = click.option(
        "--file",
        "file_",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="CSV with one number per line, or a 'number'/'phone_number' column.",
    )(f)
    f = click.argument("numbers", nargs=-1)(f)
    return f


@click.command("link")
@click.option("--provider", required=True, type=click.Choice(PROVIDERS, case_sensitive=False))
@click.option("--campaign", required=True, help="The provider's campaign id.")
@_numbers_options
@click.pass_context
def link(
    ctx: click.Context,
    provider: str,
    campaign: str,
    numbers: tuple[str, ...],
    file_: Path | None,
    dry_run: bool,
) -> None:
    """Ask for NUMBERS (or the numbers in --file) to be linked to a campaign."""
    settings: Settings = ctx.obj
    provider = provider.lower()
    require_provider(settings, provider)
    try:
        check_campaign_id(campaign)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--campaign") from None

    def record(session: Session, entries: Sequence[Entry]) -> list[NumberResult]:
        return link_numbers(
            session, provider, campaign, entries, source=Source.CLI, dry_run=dry_run
        )

    title = f"link to {provider} campaign {campaign}"
    _run(ctx, settings, numbers, file_, dry_run, record, title, provider, campaign)


@click.command("unlink")
@click.option("--provider", required=True, type=click.Choice(PROVIDERS, case_sensitive=False))
@_numbers_options
@click.pass_context
def unlink(
    ctx: click.Context,
    provider: str,
    numbers: tuple[str, ...],
    file_: Path | None,
    dry_run: bool,
) -> None:
    """Ask for NUMBERS (or the numbers in --file) to be unlinked from their campaign."""
    settings: Settings = ctx.obj
    provider = provider.lower()
    require_provider(settings, provider)

    def record(session: Session, entries: Sequence[Entry]) -> list[NumberResult]:
        return unlink_numbers(session, provider, entries, source=Source.CLI, dry_run=dry_run)

    _run(ctx, settings, numbers, file_, dry_run, record, f"unlink at {provider}", provider, None)


def _run(
    ctx: click.Context,
    settings: Settings,
    numbers: tuple[str, ...],
    file_: Path | None,
    dry_run: bool,
    record: Recorder,
    title: str,
    provider: str,
    campaign: str | None,
) -> None:
    out = console()
    entries, problems = _entries(numbers, file_)
    with engine_of(settings) as engine:
        try:
            results = _record_all(out, engine, entries, record, dry_run)
        except sa.exc.SQLAlchemyError as exc:
            why = explain_failure(exc, settings) or f"database error: {type(exc).__name__}"
            raise click.ClickException(f"database error, nothing was written: {why}") from None
    outcome = Outcome(sorted(problems + results, key=lambda r: r.line or 0))
    _print_summary(out, outcome, title, dry_run)
    if outcome.new and not dry_run:
        watch = f"dlcsync status --provider {provider}"
        if campaign:
            watch += f" --campaign {campaign}"
        out.print(
            f"Recorded as requests; the worker sends them to {provider}. "
            f"Watch them with [bold]{watch}[/] or [bold]dlcsync history NUMBER[/]."
        )
    ctx.exit(1 if outcome.rejected else 0)


def _entries(
    numbers: tuple[str, ...], file_: Path | None
) -> tuple[list[Entry], list[NumberResult]]:
    if numbers and file_ is not None:
        raise click.UsageError("give NUMBERS or --file, not both")
    if file_ is None:
        if not numbers:
            raise click.UsageError("give one or more NUMBERS, or --file numbers.csv")
        return [Entry(n) for n in numbers], []
    try:
        parsed = read_numbers(file_)
    except CsvInputError as exc:
        raise click.UsageError(str(exc)) from None
    if not parsed.entries and not parsed.problems:
        raise click.UsageError(f"{file_} holds no numbers")
    return parsed.entries, parsed.problems


def _record_all(
    out: Console,
    engine: sa.Engine,
    entries: list[Entry],
    record: Recorder,
    dry_run: bool,
) -> list[NumberResult]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
        transient=True,
        disable=len(entries) <= PROGRESS_OVER,
    )
    with progress:
        task = progress.add_task("checking", total=len(entries))
        valid, rejected = validate(_advancing(entries, progress, task))
        distinct = [entry for entry, _number in valid]

        def once() -> list[NumberResult]:
            progress.reset(task, total=len(distinct), description="recording")
            return _record_once(engine, distinct, record, dry_run, progress, task)

        try:
            return rejected + retry_concurrent(once)
        except ConcurrentChange:
            raise click.ClickException(
                "links kept changing while recording; nothing was written, try again"
            ) from None


def _record_once(
    engine: sa.Engine,
    entries: list[Entry],
    record: Recorder,
    dry_run: bool,
    progress: Progress,
    task: TaskID,
) -> list[NumberResult]:
    results: list[NumberResult] = []
    # One transaction for the whole batch: any error rolls everything back.
    with Session(engine, expire_on_commit=False) as session:
        try:
            for start in range(0, len(entries), CHUNK):
                chunk = entries[start : start + CHUNK]
                results += record(session, chunk)
                progress.advance(task, len(chunk))
            if dry_run:
                session.rollback()
            else:
                session.commit()
        except BaseException:
            session.rollback()
            raise
    return results


def _advancing(entries: Iterable[Entry], progress: Progress, task: TaskID) -> Iterator[Entry]:
    for i, entry in enumerate(entries, 1):
        yield entry
        if i % 100 == 0:
            progress.advance(task, 100)


def _print_summary(out: Console, outcome: Outcome, title: str, dry_run: bool) -> None:
    summary = Table(title=f"{'Dry run: ' if dry_run else ''}{title}", show_header=False)
    summary.add_column("result")
    summary.add_column("numbers", justify="right")
    summary.add_row("would change" if dry_run else "accepted (new)", f"{len(outcome.new):,}")
    summary.add_row("unchanged (already requested/linked)", f"{len(outcome.unchanged):,}")
    summary.add_row(
        "rejected", f"{len(outcome.rejected):,}", style="red" if outcome.rejected else None
    )
    out.print(summary)
    if dry_run:
        out.print("Dry run: nothing was written.")
    rejected = outcome.rejected
    if not rejected:
        return
    table = Table(title="Rejected")
    with_lines = any(r.line is not None for r in rejected)
    if with_lines:
        table.add_column("line", justify="right")
    table.add_column("number")
    table.add_column("reason")
    for r in rejected[:MAX_ROWS]:
        cells = [str(r.line) if r.line is not None else ""] if with_lines else []
        table.add_row(*cells, Text(r.number), Text(r.reason or ""))
    out.print(table)
    if len(rejected) > MAX_ROWS:
        out.print(f"... and {len(rejected) - MAX_ROWS:,} more rejected.")
