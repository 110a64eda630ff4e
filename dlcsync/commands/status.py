"""``dlcsync status``: links per provider, campaign and state, and the ones that need people."""

from __future__ import annotations

import json
from datetime import timedelta

import click
from rich.table import Table
from rich.text import Text
from sqlmodel import Session

from common.settings import Settings
from dlcsync.commands._common import MAX_ROWS, console, engine_of, iso, provider_option
from models.problems import problem_links
from models.reports import state_counts
from models.statemachine import State


@click.command("status")
@provider_option
@click.option("--campaign", help="Only this campaign.")
@click.option(
    "--state",
    type=click.Choice([s.value for s in State], case_sensitive=False),
    help="Only this state.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_obj
def status(
    settings: Settings, provider: str | None, campaign: str | None, state: str | None, as_json: bool
) -> None:
    """Counts of links per provider, campaign and state; failed, stuck and drifted links."""
    provider = provider.lower() if provider else None
    state = state.upper() if state else None
    with engine_of(settings) as engine, Session(engine) as session:
        counts = state_counts(session, provider=provider, campaign_id=campaign, state=state)
        problems, total_problems = problem_links(
            session,
            stuck_after=timedelta(seconds=settings.stuck_after_seconds),
            provider=provider,
            campaign_id=campaign,
            state=state,
            limit=MAX_ROWS,
        )
    out = console()
    if as_json:
        doc = {
            "counts": [
                {
                    "provider": c.provider,
                    "campaign_id": c.campaign_id,
                    "state": c.state,
                    "count": c.count,
                }
                for c in counts
            ],
            "problems": [
                {
                    "provider": p.link.provider,
                    "number": p.link.number,
                    "campaign_id": p.link.campaign_id,
                    "state": p.link.state,
                    "kind": p.kind,
                    "reason": p.reason,
                    "updated_at": iso(p.link.updated_at),
                }
                for p in problems
            ],
            "problems_total": total_problems,
        }
        click.echo(json.dumps(doc, indent=2))
        return
    if not counts:
        out.print("No links match." if provider or campaign or state else "No links yet.")
        return
    table = Table(title="Links")
    for name in ("provider", "campaign", "state"):
        table.add_column(name)
    table.add_column("links", justify="right")
    for c in counts:
        style = "red" if c.state in (State.FAILED, State.UNLINK_FAILED) else None
        table.add_row(c.provider, c.campaign_id, c.state, f"{c.count:,}", style=style)
    table.add_section()
    table.add_row("total", "", "", f"{sum(c.count for c in counts):,}")
    out.print(table)
    if not problems:
        return
    ptable = Table(title="Failed, stuck and drifted links")
    for name in ("provider", "number", "campaign", "state", "problem", "reason", "updated"):
        ptable.add_column(name)
    for p in problems:
        link = p.link
        ptable.add_row(
            link.provider,
            link.number,
            link.campaign_id,
            link.state,
            p.kind,
            Text(p.reason),
            iso(link.updated_at),
        )
    out.print(ptable)
    if total_problems > len(problems):
        out.print(f"... and {total_problems - len(problems):,} more.")
