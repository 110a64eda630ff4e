"""``dlcsync adopt``: record the links that already exist at the carrier.

List endpoints only (the account's phone-number campaigns at Telnyx; every campaign, or the
given ones, at Plivo); recording is :func:`worker.adopt.run_adopt`. Idempotent: a second run
records nothing and sends no link or unlink request.
"""

from __future__ import annotations

import click
import httpx
import sqlalchemy as sa
from rich.table import Table
from rich.text import Text

from common.settings import Settings
from dlcsync.commands._common import MAX_ROWS, PROVIDERS, console, progress_bar, require_provider


@click.command("adopt")
@click.option("--provider", required=True, type=click.Choice(PROVIDERS, case_sensitive=False))
@click.option(
    "--campaign",
    "campaigns",
    multiple=True,
    help="Only this campaign (repeatable). Default: every campaign of the account.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be recorded; write nothing.")
@click.pass_obj
def adopt(settings: Settings, provider: str, campaigns: tuple[str, ...], dry_run: bool) -> None:
    """Record the links that already exist at the carrier (source 'adopted')."""
    from worker.adopt import run_adopt
    from worker.runtime import Runtime

    provider = provider.lower()
    require_provider(settings, provider)
    out = console()
    runtime = Runtime(settings)
    try:
        with progress_bar(out) as progress:
            task = progress.add_task(f"listing {provider}", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, description="recording", completed=done, total=total)

            summary = run_adopt(
                runtime.engine,
                runtime.clients[provider],
                list(campaigns),
                cadence=runtime.reconciler.cadence,
                dry_run=dry_run,
                progress=advance,
            )
    except sa.exc.SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise click.ClickException(
            f"database error: {first[0] if first else type(exc).__name__}"
        ) from None
    finally:
        runtime.engine.dispose()
        for client in runtime.__dict__.get("clients", {}).values():
            http = getattr(client, "http", None)
            if isinstance(http, httpx.Client):
                http.close()
    table = Table(title=f"{'Dry run: ' if dry_run else ''}adopt from {provider}", show_header=False)
    table.add_column("result")
    table.add_column("numbers", justify="right")
    table.add_row("would adopt" if dry_run else "adopted", f"{summary.adopted:,}")
    table.add_row("already known", f"{summary.known:,}")
    table.add_row("drift", f"{summary.drift:,}", style="yellow" if summary.drift else None)
    table.add_row("errors", f"{len(summary.errors):,}", style="red" if summary.errors else None)
    table.add_row("linked here, not listed there", f"{len(summary.not_listed):,}")
    out.print(table)
    if summary.errors:
        errors = Table(title="Errors")
        errors.add_column("what")
        errors.add_column("why")
        for what, why in summary.errors[:MAX_ROWS]:
            errors.add_row(Text(what), Text(why))
        out.print(errors)
    if summary.not_listed:
        shown = ", ".join(summary.not_listed[:MAX_ROWS])
        more = len(summary.not_listed) - MAX_ROWS
        out.print(
            f"Linked in dlcsync but not listed by {provider} (the drift check will poll them): "
            f"{shown}{f' ... and {more:,} more' if more > 0 else ''}"
        )
    if dry_run:
        out.print("Dry run: nothing was written.")
    raise SystemExit(1 if summary.errors else 0)
