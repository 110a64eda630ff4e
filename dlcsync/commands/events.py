"""``dlcsync events``: outbound events and their delivery per URL; ``events redeliver``."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click
from rich.table import Table
from rich.text import Text
from sqlmodel import Session

from common.settings import Settings
from dlcsync.commands._common import IsoTime, console, engine_of, iso
from models import events as model
from models.db import transaction
from worker.events import url_key

STATE_STYLE = {model.REJECTED: "red", model.FAILED: "red", model.PENDING: "yellow"}


def _url_names(settings: Settings) -> dict[str, str]:
    """url_key -> "url N" (its place in EVENT_WEBHOOK_URLS; URLs may hold tokens)."""
    return {url_key(u): f"url {i}" for i, u in enumerate(settings.event_webhook_url_list, 1)}


def _row(row: model.EventRow, names: dict[str, str]) -> dict[str, Any]:
    e = row.event
    return {
        "event_id": e.id,
        "recorded_at": iso(e.recorded_at),
        "provider": e.provider,
        "number": e.number,
        "campaign_id": e.campaign_id,
        "from_state": e.from_state,
        "to_state": e.to_state,
        "deliveries": [
            {
                "url": names.get(d.url_key, f"removed url {d.url_key}"),
                "state": d.state,
                "attempts": d.attempts,
                "last_status": d.last_status,
                "last_error": d.last_error,
                "next_attempt_at": iso(d.next_attempt_at) or None,
                "delivered_at": iso(d.delivered_at) or None,
            }
            for d in row.deliveries
        ],
    }


@click.group("events", invoke_without_command=True)
@click.option("--since", type=IsoTime(), help="Only events recorded at or after this time.")
@click.option("--number", help="Only this number (E.164).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def events(
    ctx: click.Context, since: datetime | None, number: str | None, limit: int, as_json: bool
) -> None:
    """Recent outbound events (newest first) and their delivery to each EVENT_WEBHOOK_URLS."""
    if ctx.invoked_subcommand is not None:
        return
    settings: Settings = ctx.obj
    names = _url_names(settings)
    with engine_of(settings) as engine, Session(engine) as session:
        rows = model.recent(session, since=since, number=number, limit=limit)
        waiting = model.oldest_undelivered(session)
    if as_json:
        click.echo(json.dumps([_row(r, names) for r in rows], indent=2))
        return
    out = console()
    if not settings.event_webhook_url_list:
        out.print("EVENT_WEBHOOK_URLS is not set: no events are sent.")
    if not rows:
        out.print("No events match." if since or number else "No events yet.")
        return
    table = Table(title="Events (newest first)")
    for name in ("id", "recorded", "number", "campaign", "change", "delivery per URL"):
        table.add_column(name)
    for r in rows:
        e = r.event
        parts = []
        for d in r.deliveries:
            label = names.get(d.url_key, f"removed {d.url_key}")
            detail = f" ({d.attempts} attempts, {d.last_error})" if d.state != "delivered" else ""
            parts.append(f"{label}: {d.state}{detail if d.last_error else ''}")
        if not r.deliveries:
            parts.append("waiting to be fanned out" if settings.event_webhook_url_list else "-")
        style = next((STATE_STYLE[d.state] for d in r.deliveries if d.state in STATE_STYLE), None)
        table.add_row(
            str(e.id),
            iso(e.recorded_at),
            e.number,
            e.campaign_id,
            f"{e.from_state or '-'} -> {e.to_state}",
            Text("; ".join(parts)),
            style=style,
        )
    out.print(table)
    if waiting is not None:
        out.print(f"Oldest event not yet delivered everywhere: recorded {iso(waiting)}.")


@events.command("redeliver")
@click.option("--since", type=IsoTime(), required=True, help="Events recorded at or after this.")
@click.option("--url", "url", help="Only this URL (one of EVENT_WEBHOOK_URLS).")
@click.pass_obj
def redeliver(settings: Settings, since: datetime, url: str | None) -> None:
    """Send events again (same webhook-id and body) to every URL, or to --url."""
    urls = settings.event_webhook_url_list
    if not urls:
        raise click.UsageError("EVENT_WEBHOOK_URLS is not set: there is nowhere to send events")
    if url is not None:
        if url not in urls:
            raise click.UsageError("--url must be one of EVENT_WEBHOOK_URLS")
        urls = [url]
    with engine_of(settings) as engine, transaction(engine) as session:
        n = model.redeliver(session, since=since, url_keys=[url_key(u) for u in urls])
    click.echo(f"{n:,} deliveries scheduled; the worker sends them within seconds")
