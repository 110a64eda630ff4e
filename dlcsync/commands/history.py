"""``dlcsync history NUMBER``: a number's audit rows, oldest first."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table
from rich.text import Text
from sqlmodel import Session

from common.settings import Settings
from dlcsync.commands._common import console, engine_of, iso, provider_option
from models import mapping
from models.history import link_history
from models.numbers import InvalidNumber, to_e164_us
from models.reports import links_of_number
from models.tables import LinkEvent, MappingChange

COLUMNS = (
    "from",
    "to",
    "generation",
    "campaign",
    "source",
    "provider status",
    "provider time",
    "recorded",
    "reason",
    "drift",
)


def event_dict(e: LinkEvent) -> dict[str, Any]:
    """An audit row in the API's shape (DESIGN §4)."""
    return {
        "id": e.id,
        "provider": e.provider,
        "number": e.number,
        "campaign_id": e.campaign_id,
        "generation": e.generation,
        "from_state": e.from_state,
        "to_state": e.to_state,
        "source": e.source,
        "provider_status": e.provider_status,
        "provider_time": e.provider_time.isoformat() if e.provider_time else None,
        "recorded_at": e.recorded_at.isoformat(),
        "reason": e.reason,
        "drift": e.drift,
    }


@click.command("history")
@click.argument("number")
@provider_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_context
def history(ctx: click.Context, number: str, provider: str | None, as_json: bool) -> None:
    """What happened to NUMBER: every recorded change, oldest first."""
    settings: Settings = ctx.obj
    try:
        e164 = to_e164_us(number)
    except InvalidNumber as exc:
        raise click.BadParameter(f"{number!r}: {exc}", param_hint="NUMBER") from None
    provider = provider.lower() if provider else None
    with engine_of(settings) as engine, Session(engine) as session:
        links = links_of_number(session, e164, provider)
        rows = {link.provider: list(link_history(session, link.provider, e164)) for link in links}
        changes = mapping.history(session, [link.id for link in links if link.id is not None])
    out = console()
    if not links:
        where = f" at {provider}" if provider else ""
        console(stderr=True).print(f"No history for {e164}{where}: dlcsync does not manage it.")
        ctx.exit(1)
    if as_json:
        doc = [event_dict(e) for link in links for e in rows[link.provider]]
        click.echo(json.dumps(doc, indent=2))
        return
    for link in links:
        table = Table(
            title=f"{e164} at {link.provider}: {link.state} (campaign {link.campaign_id}, "
            f"generation {link.generation})"
        )
        for name in COLUMNS:
            table.add_column(name)
        for e in rows[link.provider]:
            table.add_row(
                e.from_state or "-",
                e.to_state,
                str(e.generation),
                e.campaign_id,
                e.source,
                Text(e.provider_status or ""),
                iso(e.provider_time),
                iso(e.recorded_at),
                Text(e.reason or ""),
                "yes" if e.drift else "",
                style="yellow" if e.drift else None,
            )
        out.print(table)
        mine = [c for c in changes if c.link_id == link.id]
        if mine:
            out.print(_mapping_table(e164, link.provider, mine))


def _mapping_table(number: str, provider: str, changes: list[MappingChange]) -> Table:
    """Per-carrier mapping changes (Telnyx): not state changes, so not audit rows."""
    table = Table(title=f"{number} at {provider}: carrier mapping")
    for name in ("recorded", "carrier", "from", "to", "generation", "source"):
        table.add_column(name)
    for c in changes:
        table.add_row(
            iso(c.recorded_at),
            mapping.CARRIER_NAMES.get(c.carrier, c.carrier),
            c.from_status or "-",
            c.to_status,
            str(c.generation),
            c.source,
            style="red" if c.to_status == mapping.FAILED else None,
        )
    return table
