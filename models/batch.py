"""Operator requests for many numbers at once (API, CLI, CSV files).

Everything is validated before anything is written: every rejected number gets a reason
(and its line, for files), and the accepted ones are recorded in one transaction, so bad
input never half-applies a batch. Recording is idempotent: asking again for what is
already requested or linked changes nothing.

Recording is set-based, like ``models.apply``: the batch's links are locked in one ordered
``SELECT … FOR UPDATE`` (id order, so two batches sharing numbers wait instead of
deadlocking), decided in Python by the state machine, then new links are inserted in one
multi-row INSERT, changed links saved in one compare-and-set UPDATE and every audit row in one
INSERT, whatever the number of lines (bench/: 10,000 lines). A number inserted or changed by
someone else meanwhile (the INSERT conflicts, or the compare-and-set loses) takes the
single-row path of ``models.links``, so the two paths cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session, col, select

from models.apply import CAS
from models.db import insert_many, is_postgres, update_many
from models.links import (
    NOT_MANAGED,
    LinkRef,
    RequestResult,
    generation_change,
    new_link_audit,
    new_link_values,
    request_link_of,
    request_unlink_of,
    snapshot,
)
from models.numbers import InvalidNumber, to_e164_us
from models.statemachine import Request, Source, request_link, request_unlink
from models.tables import Link, LinkEvent, utcnow

#: Numbers per SELECT on SQLite (under its parameter limit; PostgreSQL takes one array).
LOCK_CHUNK = 10_000


@dataclass(frozen=True)
class NumberResult:
    number: str
    accepted: bool
    reason: str | None = None
    #: Whether this request changes something (a new generation); False when idempotent.
    changed: bool = False
    line: int | None = None


@dataclass(frozen=True)
class Entry:
    """One number as given, with where it came from (a CSV line) if anywhere."""

    raw: str
    line: int | None = None


@dataclass(frozen=True)
class _Outcome:
    accepted: bool
    reason: str | None
    changed: bool


def validate(entries: Iterable[Entry]) -> tuple[list[tuple[Entry, str]], list[NumberResult]]:
    """Split into (entry, E.164) pairs to act on and rejected results with their reasons."""
    valid: list[tuple[Entry, str]] = []
    rejected: list[NumberResult] = []
    seen: dict[str, Entry] = {}
    for entry in entries:
        try:
            number = to_e164_us(entry.raw)
        except InvalidNumber as exc:
            rejected.append(NumberResult(entry.raw, False, str(exc), line=entry.line))
            continue
        first = seen.get(number)
        if first is not None:
            where = f"line {first.line}" if first.line is not None else repr(first.raw)
            rejected.append(NumberResult(number, False, f"duplicate of {where}", line=entry.line))
            continue
        seen[number] = entry
        valid.append((entry, number))
    return valid, rejected


def link_numbers(
    session: Session,
    provider: str,
    campaign_id: str,
    entries: Sequence[Entry],
    *,
    source: Source,
    dry_run: bool = False,
    now: datetime | None = None,
    skip_preflight: bool = False,
) -> list[NumberResult]:
    """Record link requests (not committed: the caller owns the transaction).

    ``skip_preflight``: the worker sends these links without the pre-flight checks.
    """
    now = now or utcnow()
    valid, rejected = validate(entries)
    numbers = [number for _, number in valid]
    links = links_by_number(session, provider, numbers, lock=not dry_run)
    outcomes: dict[str, _Outcome] = {}
    if dry_run:
        for number in numbers:
            link = links.get(number)
            req = request_link(snapshot(link) if link else None, campaign_id)
            reason = req.reason if not req.new_generation else "would request link"
            outcomes[number] = _Outcome(True, reason, req.new_generation)
    else:
        missing = [n for n in numbers if n not in links]
        outcomes |= _insert_new(
            session, provider, campaign_id, missing, source, now, skip_preflight
        )
        outcomes |= _start_generations(
            session,
            links,
            lambda link: request_link(snapshot(link), campaign_id),
            lambda number: request_link_of(
                session,
                provider,
                number,
                campaign_id,
                source=source,
                now=now,
                skip_preflight=skip_preflight,
            ),
            source,
            now,
            skip_preflight=skip_preflight,
        )
    return _results(valid, rejected, outcomes)


def unlink_numbers(
    session: Session,
    provider: str,
    entries: Sequence[Entry],
    *,
    source: Source,
    dry_run: bool = False,
    now: datetime | None = None,
) -> list[NumberResult]:
    now = now or utcnow()
    valid, rejected = validate(entries)
    numbers = [number for _, number in valid]
    links = links_by_number(session, provider, numbers, lock=not dry_run)
    outcomes = {n: _Outcome(False, NOT_MANAGED, False) for n in numbers if n not in links}
    if dry_run:
        for number, link in links.items():
            req = request_unlink(snapshot(link))
            reason = req.reason if not req.new_generation else "would request unlink"
            outcomes[number] = _Outcome(True, reason, req.new_generation)
    else:
        outcomes |= _start_generations(
            session,
            links,
            lambda link: request_unlink(snapshot(link)),
            lambda number: request_unlink_of(session, provider, number, source=source, now=now),
            source,
            now,
        )
    return _results(valid, rejected, outcomes)


def links_by_number(
    session: Session, provider: str, numbers: Sequence[str], *, lock: bool
) -> dict[str, Link]:
    """The existing links of ``numbers`` by number, locked in id order unless ``lock`` is
    False. ORM-loaded: building 10,000 model objects by hand costs seconds, loading them not.
    PostgreSQL: one statement, the numbers as one array; SQLite: an IN list per LOCK_CHUNK."""
    postgres = is_postgres(session)
    found: dict[str, Link] = {}
    for chunk in [numbers] if postgres else _chunks(numbers, LOCK_CHUNK):
        if not chunk:
            continue
        wanted = (
            col(Link.number) == sa.any_(sa.bindparam("numbers", list(chunk), ARRAY(sa.Text())))
            if postgres
            else col(Link.number).in_(chunk)
        )
        stmt = select(Link).where(Link.provider == provider, wanted).order_by(col(Link.id))
        if lock and postgres:  # SQLite's BEGIN IMMEDIATE serialises writers
            stmt = stmt.with_for_update()
        found |= {link.number: link for link in session.exec(stmt)}
    return found


def _chunks(numbers: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(numbers), size):
        yield numbers[start : start + size]


def _insert_new(
    session: Session,
    provider: str,
    campaign_id: str,
    numbers: Sequence[str],
    source: Source,
    now: datetime,
    skip_preflight: bool = False,
) -> dict[str, _Outcome]:
    """Insert the links of numbers never seen, with their audit rows (two statements)."""
    rows = [new_link_values(provider, n, campaign_id, now, skip_preflight) for n in numbers]
    inserted = insert_many(session, Link, rows, ignore_conflicts=True, returning=("id", "number"))
    new = {str(row.number): int(row.id) for row in inserted}
    events = [
        new_link_audit(LinkRef(new[n], provider, n), campaign_id, source, now)
        for n in numbers
        if n in new
    ]
    insert_many(session, LinkEvent, events)
    outcomes = {n: _Outcome(True, "link requested", True) for n in new}
    for number in numbers:
        if number not in new:  # inserted by someone else since we looked
            outcomes[number] = _from(
                request_link_of(
                    session,
                    provider,
                    number,
                    campaign_id,
                    source=source,
                    now=now,
                    skip_preflight=skip_preflight,
                )
            )
    return outcomes


def _start_generations(
    session: Session,
    links: dict[str, Link],
    decide: Callable[[Link], Request],
    single: Callable[[str], RequestResult],
    source: Source,
    now: datetime,
    *,
    skip_preflight: bool = False,
) -> dict[str, _Outcome]:
    """Start the generations ``decide`` asks for on the locked ``links``: one compare-and-set
    UPDATE and one audit INSERT; a link whose compare-and-set loses goes through ``single``."""
    outcomes: dict[str, _Outcome] = {}
    changes = {}
    for number, link in links.items():
        req = decide(link)
        if not req.new_generation:
            outcomes[number] = _Outcome(True, req.reason, False)
        else:
            changes[number] = generation_change(
                link, req, source, now, skip_preflight=skip_preflight
            )
    if not changes:
        return outcomes
    columns = sorted(next(iter(changes.values())).values)
    rows = [
        {
            "id": links[n].id,
            **{f"was_{c}": getattr(links[n], c) for c in CAS},
            **change.values,
        }
        for n, change in changes.items()
    ]
    won = update_many(session, Link, rows, assign=columns, match=CAS)
    insert_many(session, LinkEvent, [c.event for n, c in changes.items() if links[n].id in won])
    for number, change in changes.items():
        if links[number].id in won:
            outcomes[number] = _Outcome(True, change.reason, True)
        else:
            outcomes[number] = _from(single(number))
    return outcomes


def _from(result: RequestResult) -> _Outcome:
    return _Outcome(result.accepted, result.reason, result.changed)


def _results(
    valid: Sequence[tuple[Entry, str]], rejected: list[NumberResult], outcomes: dict[str, _Outcome]
) -> list[NumberResult]:
    results = list(rejected)
    for entry, number in valid:
        o = outcomes[number]
        results.append(NumberResult(number, o.accepted, o.reason, o.changed, entry.line))
    return _in_input_order(results)


def _in_input_order(results: list[NumberResult]) -> list[NumberResult]:
    if all(r.line is not None for r in results):
        return sorted(results, key=lambda r: r.line or 0)
    return results
