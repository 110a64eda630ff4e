"""The oracle: what must hold once the system is quiet, whatever was done to it.

1. Every delivery answered 2xx is in the inbox (0 lost).
2. Every link's final state equals the sandbox's truth.
3. At most one audit row per (link, generation, to-state) outside drift (0 double-applied);
   every audit row is an allowed transition, and a link's rows chain (from == previous to).
4. Every inbox row has exactly one outcome (applied/duplicate/stale/ignored/failed).
5. Exactly one link_failed alert per FAILED (link, generation): none missing, none doubled.
6. Provider polls per link per poll interval <= 1, and never above the account's rate
   (sandbox counters: rate_limited == 0 and max_1s <= the configured rate).

:func:`check` returns a report of figures and the list of violations; :func:`record`
appends the report to ``var/reliability/runs.jsonl`` (gitignored) for docs/reliability.md.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from models.statemachine import State, is_allowed
from models.tables import Alert, InboxItem, Link, LinkEvent

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "var" / "reliability" / "runs.jsonl"

#: Sandbox internal status -> the state dlcsync must end in (absent: UNLINKED).
TRUTH = {
    "linked": "COMPLETED",
    "link_failed": "FAILED",
    "pending_unlink": "UNLINK_PROCESSING",
    "unlink_failed": "UNLINK_FAILED",
}
OUTCOMES = {"applied", "duplicate", "stale", "ignored", "failed"}


def expected_states(
    truth: Iterable[dict[str, Any]], keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    found = {(r["provider"], r["number"]): TRUTH.get(r["status"], r["status"]) for r in truth}
    return {k: found.get(k, "UNLINKED") for k in keys}


def our_states(engine: sa.Engine) -> dict[tuple[str, str], str]:
    with Session(engine) as s:
        return {(ln.provider, ln.number): ln.state for ln in s.exec(select(Link)).all()}


def pending_inbox(engine: sa.Engine) -> int:
    with Session(engine) as s:
        return int(
            s.exec(
                select(sa.func.count())
                .select_from(InboxItem)
                .where(col(InboxItem.outcome).is_(None))
            ).one()
        )


def wait_quiet(
    engine: sa.Engine, truth: list[dict[str, Any]], timeout: float
) -> tuple[float, list[tuple[float, int, int]]]:
    """Seconds until every delivery is processed and every link equals the truth (seen twice
    in a row; -1 on timeout), and a trace of (seconds, unprocessed rows, wrong links)."""
    started = time.monotonic()
    streak, trace = 0, []
    while time.monotonic() - started < timeout:
        try:
            pending = pending_inbox(engine)
            ours = our_states(engine)
            expected = expected_states(truth, ours)
            wrong = sum(1 for k in ours if ours[k] != expected[k])
        except Exception:  # the database may be coming back
            pending = wrong = -1
        at = round(time.monotonic() - started, 1)
        if not trace or trace[-1][1:] != (pending, wrong):
            trace.append((at, pending, wrong))
        streak = streak + 1 if (pending, wrong) == (0, 0) else 0
        if streak >= 2:
            return at, trace
        time.sleep(1.0)
    return -1.0, trace


def check(
    engine: sa.Engine,
    *,
    truth: list[dict[str, Any]],
    results: list[Any],
    counters: dict[str, Any],
    poll_interval: float,
    elapsed: float,
    rates: dict[str, float],
    account_limits: dict[str, tuple[int, float]],
    jitter: float = 1.0,
) -> dict[str, Any]:
    problems: list[str] = []
    report: dict[str, Any] = {}

    # 1. 0 lost: every delivery answered 2xx is in the inbox.
    with Session(engine) as s:
        inbox = s.exec(select(InboxItem.provider, InboxItem.dedupe_key, InboxItem.outcome)).all()
    stored = {(p, k) for p, k, _ in inbox}
    statuses = Counter(r.status for r in results)
    accepted = {(r.provider, r.dedupe_key) for r in results if 200 <= r.status < 300}
    lost = accepted - stored
    never_accepted = {(r.provider, r.dedupe_key) for r in results} - accepted
    report |= {
        "deliveries": len(results),
        "callbacks": len({(r.provider, r.dedupe_key) for r in results}),
        "http_2xx": sum(n for s, n in statuses.items() if 200 <= s < 300),
        "http_status": {str(k): v for k, v in sorted(statuses.items())},
        "lost": len(lost),
        "never_accepted": len(never_accepted),
    }
    if lost:
        problems.append(
            f"{len(lost)} deliveries answered 2xx are not in the inbox: {list(lost)[:5]}"
        )
    if never_accepted:
        problems.append(f"{len(never_accepted)} callbacks never got a 2xx (gave up retrying)")
    if statuses.get(500):
        problems.append(f"{statuses[500]} answers were 500")

    # 2. final states equal the sandbox's truth.
    ours = our_states(engine)
    expected = expected_states(truth, ours)
    wrong = {k: (ours[k], expected[k]) for k in ours if ours[k] != expected[k]}
    missing = {(r["provider"], r["number"]) for r in truth} - set(ours)
    report |= {
        "links": len(ours),
        "states": dict(Counter(ours.values())),
        "wrong_state": len(wrong),
    }
    if wrong:
        problems.append(
            f"{len(wrong)} links differ from the sandbox (ours, truth): {list(wrong.items())[:5]}"
        )
    if missing:
        problems.append(f"{len(missing)} sandbox numbers unknown to dlcsync: {list(missing)[:5]}")

    # 3. no double application; allowed, chained transitions.
    with Session(engine) as s:
        rows = s.exec(select(LinkEvent).order_by(col(LinkEvent.link_id), col(LinkEvent.id))).all()
    keys = Counter((r.link_id, r.generation, r.to_state) for r in rows if not r.drift)
    doubled = [k for k, n in keys.items() if n > 1]
    illegal, broken = [], []
    previous: dict[int, str] = {}
    for r in rows:
        src = State(r.from_state) if r.from_state else None
        if not is_allowed(src, State(r.to_state), drift=r.drift):
            illegal.append((r.id, r.from_state, r.to_state))
        if previous.get(r.link_id) != r.from_state:
            broken.append((r.id, previous.get(r.link_id), r.from_state))
        previous[r.link_id] = r.to_state
    report |= {
        "audit_rows": len(rows),
        "double_applied": len(doubled),
        "illegal_transitions": len(illegal),
        "broken_chains": len(broken),
        "drift_rows": sum(1 for r in rows if r.drift),
    }
    if doubled:
        problems.append(f"{len(doubled)} transitions applied twice: {doubled[:5]}")
    if illegal:
        problems.append(f"{len(illegal)} illegal transitions: {illegal[:5]}")
    if broken:
        problems.append(f"{len(broken)} audit chains broken (row, previous to, from): {broken[:5]}")

    # 4. one outcome per inbox row.
    outcomes = Counter(o for _, _, o in inbox)
    bad = {str(o): n for o, n in outcomes.items() if o not in OUTCOMES}
    report |= {"inbox_rows": len(inbox), "outcomes": {str(k): v for k, v in outcomes.items()}}
    if bad:
        problems.append(f"inbox rows without a valid outcome: {bad}")

    # 5. exactly one link_failed alert per FAILED (link, generation).
    failed = {(r.link_id, r.generation) for r in rows if r.to_state == "FAILED" and not r.drift}
    with Session(engine) as s:
        alert_rows = s.exec(
            select(Alert.link_id, Alert.generation).where(
                Alert.kind == "link_failed", col(Alert.is_digest).is_(False)
            )
        ).all()
    per = Counter((a, g) for a, g in alert_rows)
    missing_alerts = failed - set(per)
    double_alerts = [k for k, n in per.items() if n > 1]
    stray_alerts = set(per) - failed
    report |= {
        "failed_links": len(failed),
        "link_failed_alerts": len(alert_rows),
        "missing_alerts": len(missing_alerts),
        "double_alerts": len(double_alerts),
    }
    if missing_alerts or double_alerts or stray_alerts:
        problems.append(
            f"alerts: {len(missing_alerts)} missing, {len(double_alerts)} doubled, "
            f"{len(stray_alerts)} without a FAILED row"
        )

    # 6. provider requests per link per poll interval, and the account rates.
    # Link/unlink requests (POST/PUT/DELETE) are the operator's; polls (GET) are ours to bound.
    # Every request counts, answered or refused (injected 5xx/429 included).
    accounts = counters.get("accounts", {})
    total = sum(a["requests"] for a in accounts.values())
    polls = sum(
        n
        for endpoints in counters.get("requests", {}).values()
        for methods in endpoints.values()
        for method, results in methods.items()
        if method == "GET"
        for n in results.values()
    )
    intervals = max(1.0, elapsed / poll_interval)
    per_link = polls / max(1, len(ours)) / intervals
    report |= {
        "provider_requests": total,
        "provider_polls": polls,
        "elapsed_s": round(elapsed, 1),
        "polls_per_link_per_interval": round(per_link, 4),
        "requests_per_link": round(total / max(1, len(ours)), 3),
        "accounts": accounts,
        "sandbox_faults": counters.get("faults", {}),
    }
    if per_link > 1:
        problems.append(f"{per_link:.3f} provider polls per link per poll interval (> 1)")
    for account, figures in accounts.items():
        provider = account.split(":")[0]
        limit, window = account_limits[provider]
        seen = figures["max_1s"] if window <= 1.0 else figures["max_5s"]
        if figures["rate_limited"] or seen > limit:
            problems.append(
                f"{account}: above the account's rate ({seen} in {window:g} s > {limit}, "
                f"{figures['rate_limited']} refused)"
            )
        if figures["max_1s"] > rates[provider] * jitter:
            problems.append(
                f"{account}: {figures['max_1s']} requests in 1 s > the configured "
                f"{rates[provider]:g}/s (x{jitter} for arrival jitter)"
            )

    report["problems"] = problems
    return report


def record(scenario: str, mode: str, report: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    entry = {"scenario": scenario, "mode": mode, "at": datetime.now(UTC).isoformat(), **report}
    with RESULTS.open("a") as f:
        f.write(json.dumps(entry, default=str) + "\n")
    print(f"\n[reliability] {scenario} ({mode}):")
    print(json.dumps(entry, indent=1, default=str))


COLUMNS = (
    ("scenario", "scenario"),
    ("numbers", "numbers"),
    ("callbacks", "callbacks"),
    ("deliveries", "deliveries"),
    ("http_2xx", "2xx"),
    ("kills", "kills/stops"),
    ("restarts", "restarts"),
    ("crash_points_reached", "crash exits"),
    ("lost", "lost"),
    ("double_applied", "double-applied"),
    ("wrong_state", "wrong state"),
    ("link_failed_alerts", "failed alerts"),
    ("polls_per_link_per_interval", "polls/link/interval"),
    ("storm_s", "storm s"),
    ("quiet_after_storm_s", "quiet after s"),
)


def markdown(mode: str = "long") -> str:
    """The last run of each scenario in ``mode``, as the table in docs/reliability.md:
    ``python -m tests.reliability.oracle [ci|long]``."""
    last: dict[str, dict[str, Any]] = {}
    for line in RESULTS.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("mode") == mode:
            last[entry["scenario"]] = entry

    def cell(entry: dict[str, Any], key: str) -> str:
        value = entry.get(key, "")
        if isinstance(value, dict):
            merged = dict(value)
            actions = entry.get("chaos_actions")
            if key == "kills" and isinstance(actions, dict):  # Redis and PostgreSQL stops
                merged |= {k: v for k, v in actions.items() if v and k != "worker_sigkill"}
            return ", ".join(f"{k} {v}" for k, v in merged.items() if v) or "0"
        return str(value)

    rows = ["| " + " | ".join(title for _, title in COLUMNS) + " |"]
    rows.append("|" + " --- |" * len(COLUMNS))
    rows += ["| " + " | ".join(cell(e, k) for k, _ in COLUMNS) + " |" for e in last.values()]
    return "\n".join(rows)


if __name__ == "__main__":
    import sys

    print(markdown(sys.argv[1] if len(sys.argv) > 1 else "long"))
