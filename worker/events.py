"""Outbound event delivery: the outbox → signed POSTs to every EVENT_WEBHOOK_URLS entry.

One run (the ``dlcsync.deliver_events`` beat task):

1. fan the outbox out into one delivery row per URL (:func:`models.events.fan_out`);
2. per URL, in its own thread (a slow or dead URL never holds up another): claim a batch
   of due deliveries, committed before anything is sent; POST each, signed with the
   ``standardwebhooks`` package; record the batch's outcomes in one transaction; repeat
   until nothing is due or the run's time budget is spent. A connection error or timeout
   ends that URL's run (the rest of its batch is handed back untouched), so a dead URL
   costs one timeout per run.

Runs in its own task, never inside link processing or alert delivery: a dead receiver
delays its own events, nothing else.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
import sqlalchemy as sa
import structlog
from standardwebhooks.webhooks import Webhook

from common.metrics import EVENT_DELIVERIES
from models import events
from models.db import exclusive_run, transaction
from models.tables import utcnow
from providers.http import parse_retry_after

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0
#: Deliveries claimed per batch and URL.
BATCH = 100
#: A run stops claiming after this long (well inside the claim lease).
RUN_BUDGET = timedelta(seconds=20)
#: PostgreSQL advisory lock id of a delivery run.
RUN_LOCK_ID = 0x646C6373_65767473  # "dlcs" "evts"
#: 4xx answers that are worth retrying; every other 4xx rejects the event for that URL.
RETRYABLE_4XX = frozenset({408, 409, 429})


def url_key(url: str) -> str:
    """Identifies an URL in the database without storing it (it may carry a token)."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def headers_for(signer: Webhook, claim: events.Claimed, at: datetime) -> dict[str, str]:
    msg_id = events.webhook_id(claim.event_id)
    return {
        "content-type": "application/json",
        "user-agent": "dlcsync",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signer.sign(msg_id, at, claim.body.decode()),
    }


def classify(claim: events.Claimed, response: httpx.Response) -> events.Outcome:
    status = response.status_code
    if 200 <= status < 300:
        return events.Outcome(claim, status=status)
    error = f"HTTP {status}: {response.text[:200]}".strip()
    if 400 <= status < 500 and status not in RETRYABLE_4XX:
        return events.Outcome(claim, status=status, error=error, retryable=False)
    wait = parse_retry_after(response.headers) if status in (429, 503) else None
    return events.Outcome(
        claim,
        status=status,
        error=error,
        retry_after=timedelta(seconds=wait) if wait is not None else None,
    )


@dataclass
class DeliveryStats:
    fanned_out: int = 0
    results: dict[str, int] = field(default_factory=dict)

    def add(self, counts: dict[str, int]) -> None:
        for k, n in counts.items():
            self.results[k] = self.results.get(k, 0) + n


def deliver_events(
    engine: sa.Engine,
    urls: Sequence[str],
    secret: str | None,
    *,
    client: httpx.Client | None = None,
    now: Callable[[], datetime] = utcnow,
    rng: random.Random | None = None,
    budget: timedelta = RUN_BUDGET,
    batch: int = BATCH,
) -> DeliveryStats:
    """One delivery run (see the module docstring)."""
    stats = DeliveryStats()
    with exclusive_run(engine, RUN_LOCK_ID) as mine:
        if not mine:
            return stats
        deadline = time.monotonic() + budget.total_seconds()
        keys = [url_key(u) for u in urls]
        while time.monotonic() < deadline:
            with transaction(engine) as session:
                n = events.fan_out(session, keys, now=now())
            stats.fanned_out += n
            if n < 500:
                break
        if not urls or secret is None:
            return stats
        signer = Webhook(secret)
        own = client is None
        http = client or httpx.Client(
            timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT), trust_env=False
        )
        try:
            with ThreadPoolExecutor(max_workers=len(urls)) as pool:
                futures = [
                    pool.submit(_deliver_to, engine, url, signer, http, now, rng, deadline, batch)
                    for url in urls
                ]
                for f in futures:
                    stats.add(f.result())
        finally:
            if own:
                http.close()
    return stats


def _deliver_to(
    engine: sa.Engine,
    url: str,
    signer: Webhook,
    http: httpx.Client,
    now: Callable[[], datetime],
    rng: random.Random | None,
    deadline: float,
    batch: int,
) -> dict[str, int]:
    key = url_key(url)
    totals: dict[str, int] = {}
    dead = False
    while not dead and time.monotonic() < deadline:
        with transaction(engine) as session:
            claimed = events.claim_due(session, key, now=now(), limit=batch)
        if not claimed:
            break
        outcomes: list[events.Outcome] = []
        for claim in claimed:
            if dead or time.monotonic() > deadline:
                outcomes.append(events.Outcome(claim, released=True))
                continue
            at = now()
            try:
                response = http.post(
                    url, content=claim.body, headers=headers_for(signer, claim, at)
                )
            except httpx.TransportError as exc:  # timeouts, refused, reset, DNS
                dead = True
                outcomes.append(events.Outcome(claim, error=f"{type(exc).__name__}: {exc}"[:500]))
                continue
            outcomes.append(classify(claim, response))
        with transaction(engine) as session:
            counts = events.finish(session, outcomes, now=now(), rng=rng)
        for result, n in counts.items():
            totals[result] = totals.get(result, 0) + n
            if result != "released":
                EVENT_DELIVERIES.labels(result=result).inc(n)
        if counts.get(events.REJECTED) or counts.get(events.FAILED):
            log.warning("event deliveries stopped for good", url_key=key, counts=counts)
    return totals
