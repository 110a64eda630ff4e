"""``dlcsync campaign set --provider P C --max-numbers N``: the operator's number cap."""

from __future__ import annotations

import click
import sqlalchemy as sa

from common.settings import Settings
from dlcsync.commands._common import PROVIDERS, console, engine_of
from models.campaigns import set_limit
from models.db import transaction
from models.numbers import check_campaign_id


@click.group("campaign")
def campaign() -> None:
    """Per-campaign settings."""


@campaign.command("set")
@click.option("--provider", required=True, type=click.Choice(PROVIDERS, case_sensitive=False))
@click.argument("campaign_id")
@click.option(
    "--max-numbers",
    required=True,
    type=click.IntRange(min=0),
    help="Most numbers the campaign takes (the pre-flight check refuses links beyond it).",
)
@click.pass_obj
def campaign_set(settings: Settings, provider: str, campaign_id: str, max_numbers: int) -> None:
    """Override CAMPAIGN_ID's number limit for the pre-flight check."""
    try:
        check_campaign_id(campaign_id)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="CAMPAIGN_ID") from None
    with engine_of(settings) as engine:
        try:
            with transaction(engine) as session:
                set_limit(session, provider.lower(), campaign_id, max_numbers)
        except sa.exc.SQLAlchemyError as exc:
            first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            raise click.ClickException(f"database error: {first[0] if first else exc}") from None
    console().print(f"{provider} campaign {campaign_id}: at most {max_numbers:,} numbers")
