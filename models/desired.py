"""Desired state: "these numbers should be on these campaigns" (``dlcsync plan/apply``).

:func:`make_plan` compares the declared links with what dlcsync holds, set-based: one query
loads the links of every provider named, then everything is decided in memory with the state
machine's own request rules (:func:`models.statemachine.request_link`), so a 100,000-line
file plans in seconds. It writes nothing.

:func:`apply_plan` records the plan's changes as operator requests through the usual request
functions (:mod:`models.batch`), so the worker sends them as it sends any other: a link, a
move (Telnyx PUT; Plivo unlink then link) or, with ``prune``, an unlink. Unchanged numbers
are not touched, so applying the same file again records nothing and sends nothing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlmodel import Session, col

from models.batch import Entry, link_numbers, unlink_numbers
from models.numbers import InvalidNumber, check_campaign_id, to_e164_us
from models.statemachine import Direction, LinkSnapshot, Source, State, request_link
from models.tables import Link

#: States in which dlcsync holds a number linked or on its way to be (what --prune unlinks).
HELD = frozenset({State.LINK_REQUESTED, State.PROCESSING, State.COMPLETED})


@dataclass(frozen=True)
class Desired:
    """One declared link as written (a CSV line or an API item)."""

    provider: str
    number: str
    campaign_id: str
    line: int | None = None


@dataclass(frozen=True)
class BadLine:
    line: int | None
    text: str
    reason: str


@dataclass(frozen=True)
class Change:
    provider: str
    number: str
    campaign_id: str
    #: The campaign the number leaves (moves) or is on (unlinks).
    from_campaign: str | None = None
    line: int | None = None


GROUPS = ("link", "move", "unlink", "unchanged")


@dataclass
class Plan:
    link: list[Change] = field(default_factory=list)
    move: list[Change] = field(default_factory=list)
    unlink: list[Change] = field(default_factory=list)
    unchanged: list[Change] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)
    prune: bool = False

    @property
    def changes(self) -> int:
        return len(self.link) + len(self.move) + len(self.unlink)

    def per_campaign(self) -> dict[tuple[str, str], Counter[str]]:
        """Counts per (provider, campaign) and group."""
        counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        for group in GROUPS:
            for change in getattr(self, group):
                counts[(change.provider, change.campaign_id)][group] += 1
        return dict(sorted(counts.items()))


def line_label(line: int | None) -> str:
    """How a bad line names an earlier one (a file's line; the API names list items)."""
    return f"line {line}" if line is not None else "an earlier item"


def validate(
    lines: Sequence[Desired],
    providers: Sequence[str],
    *,
    label: Callable[[int | None], str] = line_label,
) -> tuple[dict[tuple[str, str], Desired], list[BadLine]]:
    """The valid lines keyed by (provider, E.164 number), and every bad line with its reason."""
    valid: dict[tuple[str, str], Desired] = {}
    where: dict[str, Desired] = {}
    bad: list[BadLine] = []
    for item in lines:
        text = f"{item.provider},{item.number},{item.campaign_id}"[:120]
        provider = item.provider.strip().lower()
        if provider not in providers:
            bad.append(BadLine(item.line, text, f"unknown provider {item.provider[:32]!r}"))
            continue
        try:
            number = to_e164_us(item.number)
            campaign = check_campaign_id(item.campaign_id.strip())
        except (InvalidNumber, ValueError) as exc:
            bad.append(BadLine(item.line, text, str(exc)))
            continue
        first = where.get(number)
        if first is not None:
            if (first.provider, first.campaign_id) != (provider, campaign):
                bad.append(
                    BadLine(
                        item.line,
                        text,
                        f"{number} is also declared on {label(first.line)} differently",
                    )
                )
            continue  # the same declaration twice is harmless
        declared = Desired(provider, number, campaign, item.line)
        where[number] = declared
        valid[(provider, number)] = declared
    return valid, bad


def make_plan(
    session: Session,
    lines: Sequence[Desired],
    *,
    providers: Sequence[str],
    prune: bool = False,
    extra_bad: Sequence[BadLine] = (),
    label: Callable[[int | None], str] = line_label,
) -> Plan:
    """What applying ``lines`` would do. Reads only; one query for the current links."""
    desired, bad = validate(lines, providers, label=label)
    plan = Plan(bad=sorted([*extra_bad, *bad], key=lambda b: b.line or 0), prune=prune)
    named = sorted({i.provider.strip().lower() for i in lines} & set(providers))
    current = _current(session, named)
    for (provider, number), item in desired.items():
        snap = current.get((provider, number))
        req = request_link(snap, item.campaign_id)
        if not req.new_generation:
            plan.unchanged.append(Change(provider, number, item.campaign_id, line=item.line))
        elif req.prior_campaign_id:
            plan.move.append(
                Change(provider, number, item.campaign_id, req.prior_campaign_id, item.line)
            )
        else:
            plan.link.append(Change(provider, number, item.campaign_id, line=item.line))
    if prune:
        for (provider, number), snap in current.items():
            if (provider, number) not in desired and snap.state in HELD:
                plan.unlink.append(Change(provider, number, snap.campaign_id, snap.campaign_id))
    return plan


def _current(session: Session, providers: Sequence[str]) -> dict[tuple[str, str], LinkSnapshot]:
    if not providers:
        return {}
    rows = session.execute(
        sa.select(
            col(Link.provider),
            col(Link.number),
            col(Link.state),
            col(Link.generation),
            col(Link.campaign_id),
            col(Link.direction),
            col(Link.observed_at),
            col(Link.generation_started_at),
        ).where(col(Link.provider).in_(list(providers)))
    )
    return {
        (p, n): LinkSnapshot(State(s), g, c, Direction(d), o, started)
        for p, n, s, g, c, d, o, started in rows
    }


def apply_plan(
    session: Session, plan: Plan, *, source: Source, skip_preflight: bool = False
) -> int:
    """Record the plan's changes as requests (not committed). Returns how many changed."""
    if plan.bad:
        raise ValueError("a plan with bad lines cannot be applied")
    changed = 0
    wanted: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    for change in [*plan.link, *plan.move]:
        wanted[(change.provider, change.campaign_id)].append(Entry(change.number, change.line))
    for (provider, campaign), entries in sorted(wanted.items()):
        results = link_numbers(
            session, provider, campaign, entries, source=source, skip_preflight=skip_preflight
        )
        changed += sum(r.changed for r in results)
    unwanted: dict[str, list[Entry]] = defaultdict(list)
    for change in plan.unlink:
        unwanted[change.provider].append(Entry(change.number))
    for provider, entries in sorted(unwanted.items()):
        changed += sum(r.changed for r in unlink_numbers(session, provider, entries, source=source))
    return changed
