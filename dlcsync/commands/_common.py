"""Helpers shared by the commands: console, engine, provider and time options, and the one
place that turns an unreachable database or broker into a one-line error."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click
import sqlalchemy as sa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from common.settings import Settings
from models.db import make_engine
from providers.registry import SPECS, Specs, enabled_providers

#: The providers dlcsync has adapters for (``--provider`` choices).
PROVIDERS = tuple(SPECS)
#: Rows printed in a table of rejected numbers or problems before "and N more".
MAX_ROWS = 50


def console(*, stderr: bool = False) -> Console:
    """A console on the current stdout (click's test runner swaps it); wide when piped, so
    tables of numbers and reasons do not wrap at 80 columns."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or "COLUMNS" in os.environ else 160
    return Console(file=stream, width=width, highlight=False)


def progress_bar(out: Console, *, disable: bool = False) -> Progress:
    """The commands' progress bar: description, bar, done/total, elapsed; gone when done."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
        transient=True,
        disable=disable,
    )


@contextmanager
def engine_of(settings: Settings) -> Iterator[sa.Engine]:
    engine = make_engine(settings.database_url)
    try:
        yield engine
    finally:
        engine.dispose()


#: Driver messages that mean "the schema is missing or older than this build".
_UNMIGRATED = (
    "no such table",  # SQLite
    "no such column",
    "does not exist",  # PostgreSQL: relation/column "..." does not exist
    "undefinedtable",
    "undefinedcolumn",
)


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    lines = str(orig or exc).strip().splitlines()
    return lines[0][:300] if lines else type(orig or exc).__name__


def database_label(url: str) -> str:
    """The database URL without its password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "the configured DATABASE_URL"


def explain_failure(exc: BaseException, settings: Settings) -> str | None:
    """A one-line message for a database or broker failure, else None (a real bug).

    Used by the CLI group for every command, so none of them prints a traceback when
    PostgreSQL or Redis is down or ``dlcsync db upgrade`` was never run.
    """
    if isinstance(exc, sa.exc.SQLAlchemyError):
        where = database_label(settings.database_url)
        text = f"{type(getattr(exc, 'orig', None) or exc).__name__} {_first_line(exc)}".lower()
        if isinstance(exc, sa.exc.ProgrammingError | sa.exc.OperationalError) and any(
            marker in text for marker in _UNMIGRATED
        ):
            return (
                f"the database {where} is not migrated (or older than this dlcsync): "
                f"run `dlcsync db upgrade` first ({_first_line(exc)})"
            )
        if isinstance(exc, sa.exc.DBAPIError | sa.exc.TimeoutError):
            return f"cannot use the database {where}: {_first_line(exc)}"
        return None
    from alembic.util.exc import CommandError

    if isinstance(exc, CommandError):  # `db check` on a schema behind the migrations
        return f"database schema check failed: {_first_line(exc)} (run `dlcsync db upgrade`)"
    if _is_broker_error(exc):
        return f"cannot reach the broker (REDIS_URL): {_first_line(exc)}"
    return None


def _is_broker_error(exc: BaseException) -> bool:
    import redis
    from kombu.exceptions import OperationalError as KombuOperationalError

    return isinstance(exc, redis.RedisError | KombuOperationalError)


def require_provider(settings: Settings, provider: str, specs: Specs = SPECS) -> None:
    """A usage error naming the variables to set when ``provider`` has no credentials."""
    if specs[provider].enabled(settings):
        return
    names = " and ".join(specs[provider].env)
    raise click.UsageError(
        f"provider {provider} is not configured: set {names} in the environment (or .env)"
    )


def configured_providers(settings: Settings, specs: Specs = SPECS) -> list[str]:
    """The providers with credentials; a usage error naming what to set when there is none."""
    providers = enabled_providers(settings, specs)
    if not providers:
        names = "; ".join(" and ".join(spec.env) for spec in specs.values())
        raise click.UsageError(f"no provider is configured: set {names}")
    return providers


provider_option = click.option(
    "--provider",
    type=click.Choice(PROVIDERS, case_sensitive=False),
    help="Only this provider.",
)


class IsoTime(click.ParamType):  # type: ignore[type-arg]
    """An ISO 8601 date or time; a time without a zone is UTC."""

    name = "ISO8601"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time (e.g. 2024-05-01T12:00:00Z)")
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""
