"""Alert delivery: outbox rows → Apprise (every URL in ALERT_URLS), or the log when none.

One run (the ``dlcsync.deliver_alerts`` beat task, every few seconds):

1. roll the waiting alerts of hot (kind, provider, campaign) groups into digests
   (:func:`models.alerts.grouping.group_pending`), one committed transaction;
2. claim a batch of due alerts (:func:`models.alerts.delivery.claim_due`): ``sending`` plus a
   lease, committed *before* anything is sent, so no other worker sends them;
3. send each, outside any transaction, with short HTTP timeouts; an URL that failed once in
   this run is not tried again in it, so one dead endpoint costs one timeout per run;
4. record the batch's outcomes in one transaction, one statement (:func:`delivery.record`):
   sent/logged, or a retry at a capped, jittered backoff kept in ``next_attempt_at``, or
   "failed" after MAX_ATTEMPTS, or handed back unattempted when the run's time is up.

This runs in its own task, never inside link processing: an unreachable alert endpoint
delays alerts, never links.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import apprise
import sqlalchemy as sa
import structlog

from common import crashpoints
from common.metrics import ALERT_DELIVERIES
from models.alerts import delivery, grouping, messages, stuck
from models.alerts.states import DeliveryState
from models.db import exclusive_run, transaction
from models.tables import utcnow

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 5.0
#: Alerts claimed per run.
BATCH = 20
#: PostgreSQL advisory lock id of a delivery run (see ``models.db.exclusive_run``). Not for
#: correctness (claims are safe under concurrency) but for fairness: a slow alert endpoint
#: then occupies one worker process at most, never the pool that processes links.
RUN_LOCK_ID = 0x646C6373_616C7274  # "dlcs" "alrt"
#: A run stops starting sends after this long and hands the rest back (well inside the lease).
RUN_BUDGET = delivery.SEND_LEASE / 2
#: Apprise schemes whose body is our JSON document, for machines to parse.
JSON_SCHEMES = frozenset({"json", "jsons"})


class DeliveryError(Exception):
    """One URL did not accept one alert."""


Sender = Callable[[str, messages.Message], None]


def fingerprint(url: str) -> str:
    """Identifies an URL in ``delivered_to`` without storing its secrets."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def send_apprise(url: str, message: messages.Message) -> None:
    """Send one message to one Apprise URL; raise DeliveryError with Apprise's reason."""
    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        raise DeliveryError("not a valid Apprise URL")
    plugin.socket_connect_timeout = min(plugin.socket_connect_timeout, CONNECT_TIMEOUT)
    plugin.socket_read_timeout = min(plugin.socket_read_timeout, READ_TIMEOUT)
    scheme = url.split("://", 1)[0].lower()
    body = json.dumps(message.doc) if scheme in JSON_SCHEMES else message.text
    notify_type = (
        apprise.NotifyType.FAILURE if message.severity == "failure" else apprise.NotifyType.WARNING
    )
    with apprise.LogCapture(level=logging.WARNING) as captured:  # type: ignore[no-untyped-call]
        ok = plugin.notify(
            body=body,
            title=message.title,
            notify_type=notify_type,
            body_format=apprise.NotifyFormat.TEXT,
        )
    if not ok:
        lines = [line for line in captured.getvalue().splitlines() if line.strip()]
        raise DeliveryError(lines[-1] if lines else "Apprise reported a failed delivery")


@dataclass
class DeliveryStats:
    digests: int = 0
    sent: int = 0
    logged: int = 0
    retrying: int = 0
    gave_up: int = 0
    released: int = 0


def deliver_alerts(
    engine: sa.Engine,
    urls: Sequence[str],
    *,
    send: Sender = send_apprise,
    limit: int = BATCH,
    max_attempts: int = delivery.MAX_ATTEMPTS,
    now: Callable[[], datetime] = utcnow,
    rng: random.Random | None = None,
    budget: timedelta = RUN_BUDGET,
    exclusive: bool = True,
) -> DeliveryStats:
    """One delivery run (see the module docstring)."""
    if not exclusive:
        return _deliver(engine, urls, send, limit, max_attempts, now, rng, budget)
    with exclusive_run(engine, RUN_LOCK_ID) as mine:
        if not mine:
            return DeliveryStats()
        return _deliver(engine, urls, send, limit, max_attempts, now, rng, budget)


def _deliver(
    engine: sa.Engine,
    urls: Sequence[str],
    send: Sender,
    limit: int,
    max_attempts: int,
    now: Callable[[], datetime],
    rng: random.Random | None,
    budget: timedelta,
) -> DeliveryStats:
    stats = DeliveryStats()
    with transaction(engine) as session:
        stats.digests = len(grouping.group_pending(session, now=now()))
    with transaction(engine) as session:
        claimed = delivery.claim_due(session, now=now(), limit=limit)
    deadline = time.monotonic() + budget.total_seconds()
    broken: dict[str, str] = {}  # fingerprint -> error, for this run
    outcomes: list[delivery.Outcome] = []
    for claim in claimed:
        if time.monotonic() > deadline:
            outcomes.append(delivery.released(claim, now=now()))
            continue
        outcomes.append(_attempt(claim, urls, send, broken, max_attempts, now(), rng))
    if not outcomes:
        return stats
    with transaction(engine) as session:
        saved = delivery.record(session, outcomes)
    for outcome in outcomes:
        _report(outcome, outcome.claim.id in saved, stats)
    return stats


def _attempt(
    claim: delivery.Claimed,
    urls: Sequence[str],
    send: Sender,
    broken: dict[str, str],
    max_attempts: int,
    now: datetime,
    rng: random.Random | None,
) -> delivery.Outcome:
    """Send one claimed alert to every URL it has not reached yet (or to the log)."""
    message = messages.render(claim)
    if not urls:
        _bound(claim).warning("alert", title=message.title, text=message.text, doc=message.doc)
        return delivery.delivered(claim, delivered_to=(), logged_only=True, now=now)
    delivered = list(claim.delivered_to)
    errors: list[str] = []
    for index, url in enumerate(urls):
        fp = fingerprint(url)
        if fp in delivered:
            continue
        if fp in broken:
            errors.append(f"url {index + 1}: {broken[fp]} (not retried in this run)")
            continue
        try:
            send(url, message)
        except Exception as exc:  # any failure of one URL is a failed attempt, retried
            broken[fp] = f"{type(exc).__name__}: {exc}"[:500]
            errors.append(f"url {index + 1}: {broken[fp]}")
        else:
            delivered.append(fp)
            crashpoints.reach("alert.after_send")  # sent, not yet recorded: sent again
    if not errors:
        return delivery.delivered(claim, delivered_to=delivered, logged_only=False, now=now)
    return delivery.failed(
        claim,
        error="; ".join(errors),
        delivered_to=delivered,
        now=now,
        max_attempts=max_attempts,
        rng=rng,
    )


def _report(outcome: delivery.Outcome, saved: bool, stats: DeliveryStats) -> None:
    """Count and log a recorded outcome."""
    claim, state = outcome.claim, outcome.state
    if state == DeliveryState.PENDING and outcome.attempts < claim.attempts:
        stats.released += int(saved)
    elif state == DeliveryState.LOGGED:
        ALERT_DELIVERIES.labels(result="logged").inc()
        stats.logged += 1
    elif state == DeliveryState.SENT:
        ALERT_DELIVERIES.labels(result="sent").inc()
        stats.sent += 1
        if not saved:
            _bound(claim).warning("alert sent after its lease ran out; it may be sent twice")
    elif state == DeliveryState.FAILED:
        ALERT_DELIVERIES.labels(result="gave_up").inc()
        stats.gave_up += 1
        _bound(claim).error(
            "alert delivery gave up", attempts=claim.attempts, errors=outcome.last_error
        )
    else:
        ALERT_DELIVERIES.labels(result="failed").inc()
        stats.retrying += 1
        _bound(claim).warning(
            "alert delivery failed", attempts=claim.attempts, errors=outcome.last_error
        )


def _bound(claim: delivery.Claimed) -> Any:
    return log.bind(
        alert_id=claim.id,
        kind=claim.kind,
        provider=claim.provider,
        campaign_id=claim.campaign_id,
        number=claim.number,
    )


def detect_stuck(
    engine: sa.Engine, *, stuck_after: timedelta, batches: int = 20, batch: int = 500
) -> int:
    """Raise stuck alerts in bounded batches, each its own transaction. Returns the count."""
    raised = 0
    for _ in range(batches):
        with transaction(engine) as session:
            n = stuck.detect_stuck(session, stuck_after=stuck_after, limit=batch)
        raised += n
        if n < batch:
            break
    if raised:
        log.info("stuck links alerted", count=raised)
    return raised
