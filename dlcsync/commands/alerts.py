"""``dlcsync alerts``: recent alerts and how their delivery went."""

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
from models.alerts.kinds import AlertKind
from models.alerts.outbox import recent_alerts
from models.alerts.states import DeliveryState
from models.tables import Alert

STATE_STYLE: dict[str, str] = {
    DeliveryState.FAILED: "red",
    DeliveryState.PENDING: "yellow",
    DeliveryState.SENDING: "yellow",
    DeliveryState.GROUPED: "dim",
}


def alert_dict(a: Alert) -> dict[str, Any]:
    return {
        "id": a.id,
        "kind": a.kind,
        "provider": a.provider,
        "campaign_id": a.campaign_id,
        "number": a.number,
        "generation": a.generation,
        "state": a.state,
        "digest": a.is_digest,
        "digest_id": a.digest_id,
        "count": a.payload.get("count") if a.is_digest else None,
        "reason": a.payload.get("reason"),
        "attempts": a.attempts,
        "next_attempt_at": iso(a.next_attempt_at) or None,
        "last_error": a.last_error,
        "created_at": iso(a.created_at),
        "sent_at": iso(a.sent_at) or None,
    }


def _what(a: Alert) -> str:
    if a.is_digest:
        return f"digest of {a.payload.get('count', 0):,}"
    return a.number or ""


def _delivery(a: Alert) -> str:
    if a.state == DeliveryState.GROUPED:
        return f"in digest {a.digest_id}"
    if a.last_error:
        return a.last_error
    return ""


@click.command("alerts")
@click.option("--since", type=IsoTime(), help="Only alerts raised at or after this time.")
@click.option(
    "--kind",
    type=click.Choice([k.value for k in AlertKind], case_sensitive=False),
    help="Only this kind.",
)
@click.option("--limit", type=click.IntRange(1, 100_000), default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def alerts(
    settings: Settings, since: datetime | None, kind: str | None, limit: int, as_json: bool
) -> None:
    """Recent alerts, newest first, and their delivery state."""
    kind = kind.lower() if kind else None
    with engine_of(settings) as engine, Session(engine) as session:
        rows = list(recent_alerts(session, since=since, kind=kind, limit=limit))
    if as_json:
        click.echo(json.dumps([alert_dict(a) for a in rows], indent=2))
        return
    out = console()
    if not rows:
        out.print("No alerts match." if since or kind else "No alerts yet.")
        return
    table = Table(title="Alerts (newest first)")
    for name in ("id", "raised", "kind", "provider", "campaign", "number", "state"):
        table.add_column(name)
    table.add_column("attempts", justify="right")
    for name in ("sent", "next attempt", "reason / delivery"):
        table.add_column(name)
    for a in rows:
        detail = _delivery(a) or str(a.payload.get("reason") or "")
        table.add_row(
            str(a.id),
            iso(a.created_at),
            a.kind,
            a.provider or "",
            a.campaign_id or "",
            _what(a),
            a.state,
            str(a.attempts),
            iso(a.sent_at),
            iso(a.next_attempt_at) if a.state == "pending" else "",
            Text(detail),
            style=STATE_STYLE.get(a.state),
        )
    out.print(table)
    if len(rows) == limit:
        out.print(f"Showing the newest {limit:,}; use --since, --kind or --limit for others.")
