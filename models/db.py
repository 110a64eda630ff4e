"""Engines and sessions for PostgreSQL (production) and SQLite (the embedded default).

SQLite runs in WAL mode with a busy timeout and ``BEGIN IMMEDIATE`` transactions, so the
web, worker and beat processes can all write to one file without "database is locked".
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import ARRAY
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


def is_postgres(bind: Session | sa.Engine | sa.Connection) -> bool:
    return _dialect(bind) == "postgresql"


def _dialect(bind: Session | sa.Engine | sa.Connection) -> str:
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    return engine.dialect.name


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


def insert_ignoring_conflicts(
    session: Session | sa.Connection, table: Any, values: dict[str, Any]
) -> int | None:
    """INSERT ... ON CONFLICT DO NOTHING on PostgreSQL and SQLite: the new row's id, or None
    when the row existed. One round trip; the statement is built once (a Core statement with
    the row as parameters: no ORM bulk path, no new cache key per call: the webhook's INSERT).
    A Core ``Connection`` skips the Session's ORM execution path (the webhook's)."""
    stmt = _insert_ignoring(_dialect(session), table.__table__)
    # RETURNING, not rowcount: the ORM-enabled insert path does not report a rowcount.
    row = session.execute(stmt, values).first()
    return None if row is None else int(row[0])


@functools.cache
def _insert_ignoring(dialect: str, table: sa.Table) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing().returning(table.c.id)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing().returning(table.c.id)


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
    ``ignore_conflicts``. PostgreSQL: the rows as arrays (:func:`_unnest`), unless a column is
    binary; SQLite: :func:`_insert_sqlite`. Rows beyond PARAMS_PER_STATEMENT parameters take
    another statement. With ``returning``: those columns of the rows inserted (not of those
    that conflicted)."""
    if not rows:
        return []
    table: sa.Table = model.__table__
    names = list(rows[0])
    if not is_postgres(session):
        return _insert_sqlite(session, table, names, rows, ignore_conflicts, returning)
    if _unnestable(table, names):
        return _insert_unnest(session, table, names, rows, ignore_conflicts, returning)
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    stmt: Any = pg_insert(table)
    if ignore_conflicts:
        stmt = stmt.on_conflict_do_nothing()
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


def _insert_sqlite(
    session: Session,
    table: sa.Table,
    names: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    ignore_conflicts: bool,
    returning: Sequence[str],
) -> list[sa.Row[Any]]:
    """``insert_many`` on SQLite: multi-row ``INSERT … VALUES (?, …), …`` of converted values.

    SQLAlchemy converts every parameter of every row through its type (a date-time column's
    ``UTCDateTime``, then SQLite's string form): 70,000 conversions were 0.7 s of a 10,000-line
    ``dlcsync link``. Here each column's converter runs once per distinct value (a batch's rows
    share their times, states, campaign), and the driver gets plain tuples. Columns left out
    get their Python-side defaults, computed once for the statement as on PostgreSQL.
    """
    conn = session.connection()
    dialect = conn.dialect
    defaults = {
        c.name: c.default.arg(None) if c.default.is_callable else c.default.arg  # type: ignore[attr-defined]
        for c in table.columns
        if c.name not in names and c.default is not None and not c.default.is_sequence
    }
    columns = [*names, *defaults]
    converters = [_converter(table.c[n].type, dialect) for n in columns]
    fixed = tuple(defaults.values())
    values = [
        tuple(convert(row[n]) for convert, n in zip(converters, names, strict=False)) + fixed
        for row in rows
    ]
    quote = dialect.identifier_preparer.quote  # names from the table's metadata, not input
    head = f"INSERT INTO {quote(table.name)} ({', '.join(map(quote, columns))}) VALUES "  # noqa: S608
    tail = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    if returning:
        tail += " RETURNING " + ", ".join(quote(n) for n in returning)
    one = "(" + ", ".join("?" * len(columns)) + ")"
    inserted: list[sa.Row[Any]] = []
    size = max(1, PARAMS_PER_STATEMENT // len(columns))
    for start in range(0, len(values), size):
        chunk = values[start : start + size]
        sql = head + ", ".join([one] * len(chunk)) + tail
        result = conn.exec_driver_sql(sql, tuple(v for row in chunk for v in row))
        if returning:
            inserted.extend(result)
    return inserted


def _converter(type_: Any, dialect: sa.Dialect) -> Callable[[Any], Any]:
    """The type's bind conversion, once per distinct hashable value (keyed by type too:
    ``True == 1``)."""
    process = type_._cached_bind_processor(dialect)
    if process is None:
        return lambda value: value
    seen: dict[tuple[type, Any], Any] = {}

    def convert(value: Any) -> Any:
        try:
            key = (type(value), value)
            if key not in seen:
                seen[key] = process(value)
            return seen[key]
        except TypeError:  # unhashable (a JSON list or object)
            return process(value)

    return convert


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
    alias): the same VALUES as a CTE. On PostgreSQL the rows travel as arrays (see
    :func:`_unnest`) unless a column is binary.
    """
    if not rows:
        return set()
    table: sa.Table = model.__table__
    names = ["id", *(f"was_{c}" for c in match), *assign]
    types = [table.c.id.type, *(table.c[c].type for c in match), *(table.c[c].type for c in assign)]
    postgres = is_postgres(session)
    unnest = postgres and _unnestable(table, ["id", *match, *assign])
    updated: set[int] = set()
    for chunk in [rows] if unnest else _chunks(rows, len(names)):
        v: Any
        if unnest:
            # The compared values stay arrays: as constants (a batch's links often share a
            # state) they sent the planner to that column's index on a freshly loaded table.
            v = _unnest(names, types, chunk, keep_arrays=names[: 1 + len(match)])
        else:
            values = sa.values(
                *(sa.column(n, t) for n, t in zip(names, types, strict=True)), name="v"
            ).data([tuple(row[n] for n in names) for row in chunk])
            v = values if postgres else values.cte("v")
        # On PostgreSQL the ids again as one array: an index condition the planner cannot
        # misjudge. Without it, on a freshly loaded table (no statistics yet) and a batch whose
        # compare-and-set values are all the same, it nested a scan of the whole table around
        # the VALUES: 0.7 s for 50 rows of 50,000 links.
        by_id = (
            [
                table.c.id
                == sa.any_(sa.bindparam("v_ids", [r["id"] for r in chunk], ARRAY(sa.Integer())))
            ]
            if postgres
            else []
        )
        stmt = (
            sa.update(table)
            .where(*by_id, table.c.id == v.c.id, *(table.c[c] == v.c[f"was_{c}"] for c in match))
            .values({**{c: v.c[c] for c in assign}, **(extra or {})})
            .returning(table.c.id)
        )
        updated.update(int(i) for i in session.execute(stmt).scalars())
    return updated


def pairs_in(
    session: Session, a: sa.Column[Any], b: sa.Column[Any], pairs: Iterable[tuple[Any, Any]]
) -> sa.ColumnElement[bool]:
    """``(a, b) IN pairs``. On PostgreSQL ``a = x AND b = ANY(:array)`` for each distinct
    ``x``, which the planner answers from the unique index on ``(a, b)`` whatever its statistics:
    a row-value IN list is planned as an OR of one condition per pair (50-60 ms for a batch of
    500 numbers), and a join on the pairs as arrays scanned every link of the provider on a
    freshly loaded table (``python -m bench.profile apply``)."""
    wanted = sorted(set(pairs))
    if not is_postgres(session) or len(wanted) < 2:
        return sa.tuple_(a, b).in_(wanted)
    by_first: dict[Any, list[Any]] = {}
    for x, y in wanted:
        by_first.setdefault(x, []).append(y)
    return sa.or_(
        *(
            sa.and_(a == x, b == sa.any_(sa.bindparam(None, ys, _array_of(b.type))))
            for x, ys in by_first.items()
        )
    )


def _unnestable(table: sa.Table, columns: Sequence[str]) -> bool:
    """Whether ``columns`` can travel as PostgreSQL arrays (not binary: bytea[] is not worth it)."""
    return not any(isinstance(table.c[c].type, sa.LargeBinary) for c in columns)


def _array_of(type_: Any) -> ARRAY[Any]:
    # Strings travel as text[]: a cast to varchar(n)[] would silently truncate what the
    # column's own (assignment) cast refuses.
    impl = getattr(type_, "impl_instance", type_)
    return ARRAY(sa.Text() if isinstance(impl, sa.String) else type_)


def _unnest(
    names: Sequence[str],
    types: Sequence[Any],
    rows: Sequence[Mapping[str, Any]],
    *,
    keep_arrays: Collection[str] = (),
) -> Any:
    """PostgreSQL: the rows as ``(SELECT u.a, :b AS b, … FROM unnest(:a, …) AS u(a, …)) AS v``.

    One array parameter per column whose values differ, one plain parameter per column with
    the same value in every row (a batch's provider, campaign, state, time): whatever the
    number of rows the statement is short, the driver neither parses tens of thousands of
    placeholders nor encodes the same value 10,000 times, and one round trip carries it all
    (bench/bulk.py). ``keep_arrays`` stay arrays even when all the same: values a statement
    compares against (a constant there steers the planner). JSON travels as text (a list
    inside an array would be read as another dimension of it) and is cast back.
    """
    first = rows[0]
    values = {n: [row[n] for row in rows] for n in names}
    same = {n for n in names if n not in keep_arrays and _all_same(values[n])}
    varying = [n for n in names if n not in same] or [names[0]]
    typed = dict(zip(names, types, strict=True))
    as_text = {n for n in varying if isinstance(typed[n], sa.JSON)}
    arrays = [
        sa.bindparam(f"v_{n}", [_json_text(v, typed[n]) for v in values[n]], ARRAY(sa.Text()))
        if n in as_text
        else sa.bindparam(f"v_{n}", values[n], _array_of(typed[n]))
        for n in varying
    ]
    unnested = (
        sa.func.unnest(*arrays)
        .table_valued(*(sa.column(n, sa.Text() if n in as_text else typed[n]) for n in varying))
        .render_derived(name="u")
    )

    def column(n: str) -> Any:
        if n in as_text:
            return sa.cast(unnested.c[n], typed[n]).label(n)
        if n in varying:
            return unnested.c[n]
        return sa.bindparam(f"v_{n}", first[n], typed[n]).label(n)

    return sa.select(*(column(n) for n in names)).subquery("v")


def _all_same(values: list[Any]) -> bool:
    """Whether every value equals the first and has its type (``True`` is not ``1``); list
    and set built-ins, not a Python loop: a 10,000-row batch asks this of every column."""
    return values.count(values[0]) == len(values) and len(set(map(type, values))) == 1


def _json_text(value: Any, type_: sa.JSON) -> str | None:
    """What the JSON type would store: None is JSON ``null`` unless ``none_as_null``."""
    if value is None and type_.none_as_null:
        return None
    return json.dumps(value)


def _insert_unnest(
    session: Session,
    table: sa.Table,
    names: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    ignore_conflicts: bool,
    returning: Sequence[str],
) -> list[sa.Row[Any]]:
    """``insert_many`` on PostgreSQL: ``INSERT … SELECT … FROM unnest(…)``, one statement."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    v = _unnest(names, [table.c[n].type for n in names], rows)
    # Columns left out get their Python-side defaults, as in an executemany (a callable
    # default is called once for the statement, not once per row).
    stmt: Any = pg_insert(table).from_select(names, sa.select(*(v.c[n] for n in names)))
    if ignore_conflicts:
        stmt = stmt.on_conflict_do_nothing()
    if returning:
        stmt = stmt.returning(*(table.c[c] for c in returning))
    result = session.execute(stmt)
    return list(result) if returning else []


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
