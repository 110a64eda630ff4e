"""The command group: every command is found by name, and a command imports only its own."""

from __future__ import annotations

import subprocess
import sys

import click

from dlcsync.cli import COMMANDS, main


def test_every_lazy_command_resolves_to_its_own_name() -> None:
    ctx = click.Context(main)
    assert set(COMMANDS) <= set(main.list_commands(ctx))
    for name in COMMANDS:
        command = main.get_command(ctx, name)
        assert isinstance(command, click.Command)
        assert command.name == name
    assert main.get_command(ctx, "no-such-command") is None


def test_help_lists_every_command_sorted(dlcsync) -> None:  # type: ignore[no-untyped-def]
    result = dlcsync("--help")
    assert result.exit_code == 0
    lines = result.output.split("Commands:")[1].splitlines()
    names = [line.split()[0] for line in lines if line.startswith("  ") and line.strip()]
    assert names == sorted({*COMMANDS, "db"})


def test_link_does_not_import_the_other_commands_or_the_runtime() -> None:
    """``dlcsync link`` starts in a fraction of the 2 s budget (DESIGN §7): no worker, web
    app, sandbox, or other command modules."""
    code = (
        "import sys, click\n"
        "from dlcsync.cli import main\n"
        "main.get_command(click.Context(main), 'link')\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    unwanted = {
        "worker",
        "webhooks",
        "sandbox",
        "celery",
        "flask",
        "dlcsync.run",
        "dlcsync.commands.adopt",
        "dlcsync.commands.events",
        "dlcsync.commands.alerts",
    }
    assert loaded & unwanted == set()
    assert "dlcsync.commands.links" in loaded
