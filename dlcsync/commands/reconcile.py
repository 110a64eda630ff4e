"""``dlcsync reconcile``: poll now, from this process, until nothing matching is due.

Uses the worker's :class:`~worker.reconcile.Reconciler` with the configured credentials and
the same rate limiters (shared through Redis when ``REDIS_URL`` is set), so running it next
to the worker never exceeds a provider account's rate.
"""

from __future__ import annotations

import click
import httpx
from rich.table import Table

from common.settings import Settings
from dlcsync.commands._common import (
    configured_providers,
    console,
    progress_bar,
    provider_option,
    require_provider,
)


@click.command("reconcile")
@provider_option
@click.option("--campaign", help="Only this campaign.")
@click.pass_obj
def reconcile(settings: Settings, provider: str | None, campaign: str | None) -> None:
    """Send pending requests and poll matching links now; return when done."""
    from worker.reconcile import Stats, until_quiet
    from worker.runtime import Runtime

    if provider:
        provider = provider.lower()
        require_provider(settings, provider)
        providers = [provider]
    else:
        providers = configured_providers(settings)
    runtime = Runtime(settings)
    out = console()
    total = Stats()
    try:
        reconciler = runtime.reconciler
        due = {p: reconciler.make_due(provider=p, campaign_id=campaign) for p in providers}
        with progress_bar(out) as progress:
            for p in providers:
                task = progress.add_task(f"reconciling {p}", total=due[p])

                def advance(stats: Stats, task: object = task) -> None:
                    progress.advance(task, stats.claimed)  # type: ignore[arg-type]

                total.add(
                    until_quiet(reconciler, provider=p, campaign_id=campaign, on_round=advance)
                )
    finally:
        runtime.engine.dispose()
        # The pooled httpx clients, if they were built (cached_property stores in __dict__).
        for client in runtime.__dict__.get("clients", {}).values():
            http = getattr(client, "http", None)
            if isinstance(http, httpx.Client):
                http.close()
    table = Table(
        title="Reconciled" + (f" campaign {campaign}" if campaign else ""), show_header=False
    )
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("links claimed", f"{total.claimed:,}")
    table.add_row("provider requests sent", f"{total.requests_sent:,}")
    table.add_row("links polled", f"{total.polled:,}")
    table.add_row("changes applied", f"{total.applied:,}")
    table.add_row(
        "errors (retried later)", f"{total.errors:,}", style="red" if total.errors else None
    )
    for verdict, n in sorted(total.verdicts.items()):
        table.add_row(f"  {verdict}", f"{n:,}")
    out.print(table)
    out.print("See [bold]dlcsync status[/] for the states now.")
