"""The ``dlcsync`` command line (DESIGN §5).

Subcommands are imported only when they run (:data:`COMMANDS`): ``dlcsync link`` should not
pay for the worker, the providers' HTTP clients or the sandbox (DESIGN §7: a 10,000-line
``link --file`` in under 2 s, process start-up included). ``--help`` imports them all.
"""

from __future__ import annotations

import importlib
from typing import Any

import click
from pydantic import ValidationError

from common.settings import Settings

#: Commands that live in their own modules: name -> "module:attribute", imported on use.
COMMANDS = {
    "adopt": "dlcsync.commands.adopt:adopt",
    "alerts": "dlcsync.commands.alerts:alerts",
    "apply": "dlcsync.commands.desired:apply",
    "campaign": "dlcsync.commands.campaign:campaign",
    "events": "dlcsync.commands.events:events",
    "export": "dlcsync.commands.export:export",
    "history": "dlcsync.commands.history:history",
    "link": "dlcsync.commands.links:link",
    "plan": "dlcsync.commands.desired:plan",
    "reconcile": "dlcsync.commands.reconcile:reconcile",
    "run": "dlcsync.run:run",
    "sandbox": "sandbox.cli:sandbox",
    "status": "dlcsync.commands.status:status",
    "unlink": "dlcsync.commands.links:unlink",
}


class Group(click.Group):
    """The ``dlcsync`` group: a database or broker that is down, or a schema that was never
    migrated, ends any command with one line (``Error: ...``, exit 1), not a traceback.

    The commands of :data:`COMMANDS` are imported when named (click's lazy group pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, _, attr = COMMANDS[cmd_name].partition(":")
        command = getattr(importlib.import_module(module), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{COMMANDS[cmd_name]} is not a click command")
        self.add_command(command, cmd_name)
        return command

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
