"""The ``dlcsync`` command line (DESIGN §5)."""

from __future__ import annotations

from typing import Any

import click
from pydantic import ValidationError

from common.settings import Settings


class Group(click.Group):
    """The ``dlcsync`` group: a database or broker that is down, or a schema that was never
    migrated, ends any command with one line (``Error: ...``, exit 1), not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except Exception as exc:
            from dlcsync.commands._common import explain_failure

            settings = ctx.obj if isinstance(ctx.obj, Settings) else None
            message = explain_failure(exc, settings) if settings is not None else None
            if message is None:
                raise
            raise click.ClickException(message) from None


@click.group(cls=Group)
@click.pass_context
def main(ctx: click.Context) -> None:
    """dlcsync keeps US 10DLC number-to-campaign links consistent with the carrier."""
    try:
        ctx.obj = Settings()
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise click.ClickException(f"configuration: {problems}") from None


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(settings: Settings) -> None:
    """Create or migrate the schema to the latest revision."""
    from models.migrate import upgrade

    upgrade(settings.database_url)
    click.echo("database is at the latest revision")


@db.command("check")
@click.pass_obj
def db_check(settings: Settings) -> None:
    """Fail if the models and the migrations disagree."""
    from models.migrate import check

    check(settings.database_url)


def _register_subcommands() -> None:
    """Commands that live in their own modules (imported lazily by click at call time)."""
    from dlcsync.commands.adopt import adopt
    from dlcsync.commands.alerts import alerts
    from dlcsync.commands.campaign import campaign
    from dlcsync.commands.desired import apply, plan
    from dlcsync.commands.events import events
    from dlcsync.commands.export import export
    from dlcsync.commands.history import history
    from dlcsync.commands.links import link, unlink
    from dlcsync.commands.reconcile import reconcile
    from dlcsync.commands.status import status
    from dlcsync.run import run
    from sandbox.cli import sandbox

    main.add_command(sandbox)
    main.add_command(run)
    for command in (
        link,
        unlink,
        status,
        history,
        reconcile,
        export,
        alerts,
        events,
        adopt,
        plan,
        apply,
        campaign,
    ):
        main.add_command(command)


_register_subcommands()
