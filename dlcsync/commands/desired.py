"""``dlcsync plan FILE`` and ``dlcsync apply FILE``: make dlcsync hold a declared state.

FILE is a CSV with the header ``provider,number,campaign_id``. Planning is
:func:`models.desired.make_plan` (set-based, writes nothing); applying records the plan's
links, moves and (with ``--prune``) unlinks as requests that the worker sends. Bad lines
abort before anything is recorded; applying the same file again changes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlmodel import Session

from common.settings import Settings
from dlcsync.commands._common import MAX_ROWS, PROVIDERS, console, engine_of
from dlcsync.csvinput import CsvInputError, read_desired
from models.desired import GROUPS, Plan, apply_plan, make_plan
from models.statemachine import Source

_file = click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
_prune = click.option(
    "--prune",
    is_flag=True,
    help="Also unlink numbers dlcsync holds on a provider named in FILE that FILE leaves out.",
)


def _plan(settings: Settings, file: Path, prune: bool) -> Plan:
    try:
        parsed = read_desired(file)
    except CsvInputError as exc:
        raise click.UsageError(str(exc)) from None
    with engine_of(settings) as engine, Session(engine) as session:
        try:
            return make_plan(
                session, parsed.lines, providers=PROVIDERS, prune=prune, extra_bad=parsed.problems
            )
        except sa.exc.SQLAlchemyError as exc:
            raise click.ClickException(f"database error: {_first_line(exc)}") from None


@click.command("plan")
@_file
@_prune
@click.pass_obj
def plan(settings: Settings, file: Path, prune: bool) -> None:
    """Show what 'dlcsync apply FILE' would do. Writes nothing."""
    out = console()
    result = _plan(settings, file, prune)
    _print_plan(out, result)
    raise SystemExit(1 if result.bad else 0)


@click.command("apply")
@_file
@_prune
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--skip-preflight", is_flag=True, help="Send the links without the pre-flight checks."
)
@click.pass_obj
def apply(settings: Settings, file: Path, prune: bool, yes: bool, skip_preflight: bool) -> None:
    """Make dlcsync hold what FILE declares: link, move and (--prune) unlink numbers."""
    out = console()
    result = _plan(settings, file, prune)
    _print_plan(out, result)
    if result.bad:
        raise click.ClickException(f"{len(result.bad):,} bad line(s): nothing was recorded")
    if not result.changes:
        out.print("Nothing to do: dlcsync already holds what the file declares.")
        return
    if not yes:
        if not sys.stdin.isatty():
            raise click.ClickException("no terminal to confirm on: run again with --yes")
        click.confirm(f"Apply {result.changes:,} change(s)?", abort=True)
    with engine_of(settings) as engine, Session(engine, expire_on_commit=False) as session:
        try:
            changed = apply_plan(session, result, source=Source.CLI, skip_preflight=skip_preflight)
            session.commit()
        except sa.exc.SQLAlchemyError as exc:
            session.rollback()
            raise click.ClickException(
                f"database error, nothing was recorded: {_first_line(exc)}"
            ) from None
    out.print(
        f"Recorded {changed:,} request(s); the worker sends them. "
        "Watch them with [bold]dlcsync status[/]."
    )


def _print_plan(out: Console, result: Plan) -> None:
    title = "Plan" + (" (with --prune)" if result.prune else "")
    table = Table(title=title)
    table.add_column("provider")
    table.add_column("campaign")
    for group in GROUPS:
        table.add_column(group, justify="right")
    for (provider, campaign), counts in result.per_campaign().items():
        table.add_row(provider, Text(campaign), *(f"{counts[g]:,}" for g in GROUPS))
    table.add_row("total", "", *(f"{len(getattr(result, g)):,}" for g in GROUPS), style="bold")
    out.print(table)
    for group in ("link", "move", "unlink"):
        changes = getattr(result, group)
        if not changes:
            continue
        shown = Table(title=f"To {group}")
        shown.add_column("provider")
        shown.add_column("number")
        shown.add_column("campaign")
        if group == "move":
            shown.add_column("from")
        for c in changes[:MAX_ROWS]:
            cells = [c.provider, c.number, Text(c.campaign_id)]
            shown.add_row(*cells, *([Text(c.from_campaign or "")] if group == "move" else []))
        out.print(shown)
        if len(changes) > MAX_ROWS:
            out.print(f"... and {len(changes) - MAX_ROWS:,} more to {group}.")
    if result.bad:
        bad = Table(title="Bad lines", style="red")
        bad.add_column("line", justify="right")
        bad.add_column("text")
        bad.add_column("reason")
        for b in result.bad[:MAX_ROWS]:
            bad.add_row(str(b.line or ""), Text(b.text), Text(b.reason))
        out.print(bad)
        if len(result.bad) > MAX_ROWS:
            out.print(f"... and {len(result.bad) - MAX_ROWS:,} more bad lines.")


def _first_line(exc: Exception) -> str:
    first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return first[0] if first else type(exc).__name__
