"""Engines and sessions for PostgreSQL (production) and SQLite (the embedded default).

SQLite runs in WAL mode with a busy timeout and ``BEGIN IMMEDIATE`` transactions, so the
web, worker and beat processes can all write to one file without "database is locked".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlmodel import Session

SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs (Heroku-style ``postgres://`` too)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def make_engine(url: str, **kwargs: Any) -> sa.Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            **kwargs,
        )
        _make_sqlite_concurrent(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # Fail fast when the database is down: the webhook must answer 503 well under 2 s.
    kwargs.setdefault("connect_args", {"connect_timeout": 2})
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_timeout", 2)
    return sa.create_engine(url, **kwargs)


def _make_sqlite_concurrent(engine: sa.Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # Take the write lock up front: no deadlock-prone read-then-upgrade.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def is_postgres(bind: Session | sa.Engine) -> bool:
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    return engine.dialect.name == "postgresql"


@contextmanager
def transaction(engine: sa.Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def insert_ignoring_conflicts(session: Session, table: Any, values: dict[str, Any]) -> int | None:
    """INSERT ... ON CONFLICT DO NOTHING on PostgreSQL and SQLite: the new row's id, or None
    when the row existed. One round trip."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(table).values(**values).on_conflict_do_nothing()
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table).values(**values).on_conflict_do_nothing()
    # RETURNING, not rowcount: the ORM-enabled insert path does not report a rowcount.
    row = session.execute(stmt.returning(table.id)).first()
    return None if row is None else int(row[0])


#: Rows per multi-row INSERT of ``insert_many``.
INSERT_PAGE = 2_000
#: Bound parameters per set-based statement, under SQLite's limit of 32,766 (PostgreSQL: 65,535).
PARAMS_PER_STATEMENT = 30_000


def _chunks(
    rows: Sequence[Mapping[str, Any]], columns: int
) -> Iterator[Sequence[Mapping[str, Any]]]:
    size = max(1, PARAMS_PER_STATEMENT // max(columns, 1))
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def insert_many(
    session: Session,
    model: Any,
    rows: Sequence[Mapping[str, Any]],
    *,
    ignore_conflicts: bool = False,
    returning: Sequence[str] = (),
) -> list[sa.Row[Any]]:
    """One multi-row INSERT for all ``rows`` (same keys in each), ON CONFLICT DO NOTHING when
    ``ignore_conflicts``. Rows beyond PARAMS_PER_STATEMENT parameters take another statement.
    With ``returning``: those columns of the rows inserted (not of those that conflicted)."""
    if not rows:
        return []
    table: sa.Table = model.__table__
    if ignore_conflicts and session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(table).on_conflict_do_nothing()
    elif ignore_conflicts:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table).on_conflict_do_nothing()
    else:
        stmt = sa.insert(table)
    if returning:
        stmt = stmt.returning(*(table.c[c] for c in returning))
    inserted: list[sa.Row[Any]] = []
    # An executemany: SQLAlchemy's "insertmanyvalues" sends multi-row INSERTs of
    # INSERT_PAGE rows, compiled once (a .values(list) compiles every parameter, every time).
    for chunk in _chunks(rows, len(rows[0])):
        result = session.execute(
            stmt.execution_options(insertmanyvalues_page_size=INSERT_PAGE), list(chunk)
        )
        if returning:
            inserted.extend(result)
    return inserted


def update_many(
    session: Session,
    model: Any,
    rows: Sequence[Mapping[str, Any]],
    *,
    assign: Sequence[str],
    match: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> set[int]:
    """Update many rows by id, each with its own values, in one statement; the ids updated.

    Each row carries ``id``, the ``assign`` columns' new values and, for a compare-and-set,
    ``was_<column>`` for every ``match`` column: a row whose current values differ is left
    alone and missing from the result. ``extra`` sets further columns to one expression for
    all rows. PostgreSQL: ``UPDATE … FROM (VALUES …)``; SQLite (no column list on a VALUES
    alias): the same VALUES as a CTE.
    """
    if not rows:
        return set()
    table: sa.Table = model.__table__
    names = ["id", *(f"was_{c}" for c in match), *assign]
    types = [table.c.id.type, *(table.c[c].type for c in match), *(table.c[c].type for c in assign)]
    updated: set[int] = set()
    for chunk in _chunks(rows, len(names)):
        values = sa.values(
            *(sa.column(n, t) for n, t in zip(names, types, strict=True)), name="v"
        ).data([tuple(row[n] for n in names) for row in chunk])
        v: Any = values if session.get_bind().dialect.name == "postgresql" else values.cte("v")
        stmt = (
            sa.update(table)
            .where(table.c.id == v.c.id, *(table.c[c] == v.c[f"was_{c}"] for c in match))
            .values({**{c: v.c[c] for c in assign}, **(extra or {})})
            .returning(table.c.id)
        )
        updated.update(int(i) for i in session.execute(stmt).scalars())
    return updated


@contextmanager
def exclusive_run(engine: sa.Engine, lock_id: int) -> Iterator[bool]:
    """At most one holder of ``lock_id`` at a time on PostgreSQL (True if this one may go on).

    A session-level advisory lock on a connection held for the run: a killed worker's
    connection closes and the lock goes with it. SQLite serialises writers anyway.
    """
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as conn:
        got = bool(
            conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_id}).scalar()
        )
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": lock_id})
                conn.commit()
