"""Operator requests for many numbers at once (API, CLI, CSV files).

Everything is validated before anything is written: every rejected number gets a reason
(and its line, for files), and the accepted ones are recorded in one transaction, so bad
input never half-applies a batch. Recording is idempotent: asking again for what is
already requested or linked changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from models.links import NOT_MANAGED, load, request_link_of, request_unlink_of, snapshot
from models.numbers import InvalidNumber, to_e164_us
from models.statemachine import Source, request_link, request_unlink


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
    """Record link requests (not committed: the caller owns the transaction)."""
    valid, rejected = validate(entries)
    results = list(rejected)
    for entry, number in valid:
        if dry_run:
            link = load(session, provider, number, lock=False)
            req = request_link(snapshot(link) if link else None, campaign_id)
            reason = req.reason if not req.new_generation else "would request link"
            results.append(NumberResult(number, True, reason, req.new_generation, entry.line))
            continue
        r = request_link_of(
            session,
            provider,
            number,
            campaign_id,
            source=source,
            now=now,
            skip_preflight=skip_preflight,
        )
        results.append(NumberResult(number, r.accepted, r.reason, r.changed, entry.line))
    return _in_input_order(results)


def unlink_numbers(
    session: Session,
    provider: str,
    entries: Sequence[Entry],
    *,
    source: Source,
    dry_run: bool = False,
    now: datetime | None = None,
) -> list[NumberResult]:
    valid, rejected = validate(entries)
    results = list(rejected)
    for entry, number in valid:
        link = load(session, provider, number, lock=not dry_run)
        if link is None:
            results.append(NumberResult(number, False, NOT_MANAGED, line=entry.line))
        elif dry_run:
            req = request_unlink(snapshot(link))
            reason = req.reason if not req.new_generation else "would request unlink"
            results.append(NumberResult(number, True, reason, req.new_generation, entry.line))
        else:
            r = request_unlink_of(session, provider, number, source=source, now=now)
            results.append(NumberResult(number, r.accepted, r.reason, r.changed, entry.line))
    return _in_input_order(results)


def _in_input_order(results: list[NumberResult]) -> list[NumberResult]:
    if all(r.line is not None for r in results):
        return sorted(results, key=lambda r: r.line or 0)
    return results
