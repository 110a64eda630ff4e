"""Callback delivery: a scheduler thread plus a few worker threads, never the request handlers.

Every callback the carrier emits becomes a :class:`Callback` in the log. Switches (drop,
duplicate, delay, reorder, bad signature) apply when it is emitted; deliveries that do not
get 2xx (Plivo: 200) are retried ``*_callback_retries`` times after
``callback_retry_intervals``. Each worker owns a queue and a number always goes to the same
worker, so without delay/reorder the callbacks of one number arrive in order.
"""

from __future__ import annotations

import heapq
import itertools
import json
import queue
import random
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from sandbox.config import SandboxConfig
from sandbox.signing import TelnyxSigner, plivo_headers
from sandbox.state import Event, utcnow

MAX_LOG = 100_000
COUNTER_KEYS = (
    "emitted",
    "skipped_no_url",
    "skipped_disabled",
    "dropped",
    "duplicated",
    "sent",
    "delivered",
    "failed",
    "retried",
    "resent",
    "bad_signature",
)


@dataclass
class Callback:
    id: int
    provider: str
    url: str
    method: str
    body: dict[str, Any]  # Plivo: the form/query params; Telnyx: the JSON envelope
    created_at: datetime
    dropped: bool = False
    attempts: list[dict[str, Any]] = field(default_factory=list)
    next_attempt: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.provider,
            "url": self.url,
            "method": self.method,
            "body": self.body,
            "created_at": self.created_at.isoformat(),
            "dropped": self.dropped,
            "attempts": list(self.attempts),
        }


@dataclass
class _Job:
    cb: Callback
    duplicate: bool = False
    resend: bool = False
    retry: int = 0  # how many retries of this job so far


def _iso_ms(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds")


def plivo_params(event: Event) -> dict[str, str]:
    params = {
        "campaign_id": event.campaign_id,
        "number": event.number.lstrip("+"),
        "event": "number_linking" if event.kind == "link" else "number_unlinking",
        "status": {"accepted": "created", "success": "success", "failed": "failed"}[event.phase],
    }
    if event.reason:
        params["reason"] = event.reason
    return params


def telnyx_envelope(event: Event, payload: dict[str, Any], url: str) -> dict[str, Any]:
    return {
        "data": {
            "event_type": "10dlc.phone_number.update",
            "id": str(uuid.uuid4()),
            "occurred_at": _iso_ms(event.occurred_at),
            "payload": payload,
            "record_type": "event",
        },
        "meta": {"attempt": 1, "delivered_to": url},
    }


def is_shared_campaign(campaign: str) -> bool:
    """Telnyx's own campaigns have UUIDs (the spec's ``format: uuid``); any other id is the TCR
    id of a campaign another CSP shares with the account."""
    try:
        uuid.UUID(campaign)
    except ValueError:
        return True
    return len(campaign) != 36 or any(campaign[i] != "-" for i in (8, 13, 18, 23))


def tcr_campaign_id(campaign: str) -> str:
    """The TCR id of a campaign: a shared campaign is known by it; an own campaign gets a
    stable made-up one."""
    if is_shared_campaign(campaign):
        return campaign
    return "C" + format(zlib.crc32(campaign.encode()), "08X")[:6]


def telnyx_payloads(event: Event, status_updates: bool) -> list[dict[str, Any]]:
    base = {"campaignId": event.campaign_id, "phoneNumber": event.number}
    out: list[dict[str, Any]] = []
    if event.phase != "accepted":
        out.append(
            {
                **base,
                "status": event.phase,
                "type": "ASSIGNMENT" if event.kind == "link" else "DELETION",
                "reasons": [event.reason] if event.reason else [],
            }
        )
    if status_updates:
        if event.phase == "accepted":
            status = "PENDING"
        elif event.phase == "failed":
            status = "FAILED"
        else:
            status = "ADDED" if event.kind == "link" else "DELETED"
        out.append(
            {
                **base,
                "tcrCampaignId": tcr_campaign_id(event.campaign_id),
                "status": status,
                "type": "STATUS_UPDATE",
            }
        )
    return out


class Dispatcher:
    def __init__(
        self,
        config: Callable[[], SandboxConfig],
        signer: Callable[[], TelnyxSigner],
        workers: int = 8,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._signer = signer
        self._clock = clock
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, _Job]] = []
        self._hold: list[_Job] = []
        self._hold_since = 0.0
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self._log: deque[Callback] = deque(maxlen=MAX_LOG)
        self._inflight = 0
        self._stopping = False
        self._rng = random.Random()
        self.counters: dict[str, int] = dict.fromkeys(COUNTER_KEYS, 0)
        self._client = httpx.Client(
            trust_env=False,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=workers * 2, max_keepalive_connections=workers),
        )
        self._queues: list[queue.Queue[_Job | None]] = [queue.Queue() for _ in range(workers)]
        self._threads = [
            threading.Thread(target=self._worker, args=(q,), name=f"sandbox-cb-{i}", daemon=True)
            for i, q in enumerate(self._queues)
        ]
        self._threads.append(
            threading.Thread(target=self._scheduler, name="sandbox-cb-sched", daemon=True)
        )
        for t in self._threads:
            t.start()

    # ---- emission ----
    def submit(self, event: Event) -> None:
        """Called by the carrier (under its lock): must be quick."""
        cfg = self._config()
        messages: list[tuple[str, str, str, dict[str, Any]]] = []
        if event.provider == "plivo":
            if event.phase == "accepted" and not cfg.plivo_created_callbacks:
                return
            if not event.callback_url:
                self._count("skipped_no_url")
                return
            method = "GET" if event.callback_method.upper() == "GET" else "POST"
            messages.append(("plivo", event.callback_url, method, plivo_params(event)))
        else:
            payloads = telnyx_payloads(event, cfg.telnyx_status_updates)
            if not payloads:
                return
            url = cfg.telnyx_campaign_webhooks.get(event.campaign_id) or cfg.telnyx_webhook_url
            if not url:
                self._count("skipped_no_url", len(payloads))
                return
            for payload in payloads:
                messages.append(("telnyx", url, "POST", telnyx_envelope(event, payload, url)))
        with self._cv:
            for provider, url, method, body in messages:
                if not cfg.callbacks_enabled:
                    self.counters["skipped_disabled"] += 1
                    continue
                cb = Callback(next(self._ids), provider, url, method, body, utcnow())
                self._log.append(cb)
                self.counters["emitted"] += 1
                if self._rng.random() < cfg.callback_drop_ratio:
                    cb.dropped = True
                    self.counters["dropped"] += 1
                    continue
                copies = 1
                if self._rng.random() < cfg.callback_duplicate_ratio:
                    copies += self._rng.choice((1, 2))
                    self.counters["duplicated"] += copies - 1
                for i in range(copies):
                    self._enqueue(_Job(cb, duplicate=i > 0), cfg)
            self._cv.notify_all()

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counters[key] += n

    def _enqueue(self, job: _Job, cfg: SandboxConfig) -> None:
        """With the lock held."""
        now = self._clock()
        if cfg.callback_reorder_window > 1:
            if not self._hold:
                self._hold_since = now
            self._hold.append(job)
            if len(self._hold) >= cfg.callback_reorder_window:
                self._release_hold(now)
            return
        delay = self._rng.uniform(0, cfg.callback_delay) if cfg.callback_delay > 0 else 0.0
        self._push(now + delay, job)

    def _push(self, due: float, job: _Job) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), job))

    def _release_hold(self, now: float) -> None:
        held, self._hold = self._hold, []
        self._rng.shuffle(held)
        for i, job in enumerate(held):
            # Strictly increasing due times keep the shuffled order through the scheduler.
            self._push(now + i * 1e-6, job)

    def resend(self, since: datetime | None = None, provider: str | None = None) -> int:
        """Send again every logged callback (created at/after ``since``), dropped ones too."""
        now = self._clock()
        n = 0
        with self._cv:
            for cb in list(self._log):
                if provider and cb.provider != provider:
                    continue
                if since is not None and cb.created_at < since:
                    continue
                self._push(now, _Job(cb, resend=True))
                n += 1
            self.counters["resent"] += n
            self._cv.notify_all()
        return n

    # ---- scheduling and delivery ----
    def _scheduler(self) -> None:
        while True:
            with self._cv:
                if self._stopping:
                    return
                now = self._clock()
                cfg = self._config()
                if self._hold and (
                    now - self._hold_since >= cfg.callback_reorder_hold
                    or cfg.callback_reorder_window <= 1
                ):
                    self._release_hold(now)
                ready: list[_Job] = []
                while self._heap and self._heap[0][0] <= now:
                    ready.append(heapq.heappop(self._heap)[2])
                self._inflight += len(ready)
                if not ready:
                    timeout = 0.5
                    if self._heap:
                        timeout = min(timeout, self._heap[0][0] - now)
                    if self._hold:
                        timeout = min(timeout, self._hold_since + cfg.callback_reorder_hold - now)
                    self._cv.wait(max(timeout, 0.001))
                    continue
            for job in ready:
                key = zlib.crc32(f"{job.cb.provider}|{self._number(job.cb)}".encode())
                self._queues[key % len(self._queues)].put(job)

    @staticmethod
    def _number(cb: Callback) -> str:
        if cb.provider == "plivo":
            return str(cb.body.get("number", ""))
        return str(cb.body["data"]["payload"].get("phoneNumber", ""))

    def _worker(self, q: queue.Queue[_Job | None]) -> None:
        while True:
            job = q.get()
            if job is None:
                return
            try:
                self._deliver(job)
            except Exception as exc:  # never let a worker die
                with self._lock:
                    job.cb.attempts.append({"error": f"internal: {exc!r}"})
            finally:
                with self._cv:
                    self._inflight -= 1
                    self._cv.notify_all()

    def _deliver(self, job: _Job) -> None:
        cfg = self._config()
        cb = job.cb
        with self._lock:
            attempt = cb.next_attempt
            cb.next_attempt += 1
        bad = self._rng.random() < cfg.callback_bad_signature_ratio
        url = cb.url
        content: bytes | None = None
        if cb.provider == "plivo":
            params = {k: str(v) for k, v in cb.body.items()}
            if cb.method == "GET":
                url = url + ("&" if "?" in url else "?") + urlencode(params)
                headers = plivo_headers("GET", url, {}, cfg.plivo_auth_token, bad=bad)
            else:
                content = urlencode(params).encode()
                headers = plivo_headers("POST", url, params, cfg.plivo_auth_token, bad=bad)
                headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            body = json.loads(json.dumps(cb.body))
            body["meta"]["attempt"] = attempt
            content = json.dumps(body, separators=(",", ":")).encode()
            headers = self._signer().headers(content, bad=bad)
        started = self._clock()
        status: int | None = None
        error: str | None = None
        try:
            resp = self._client.request(
                cb.method, url, content=content, headers=headers, timeout=cfg.callback_timeout
            )
            status = resp.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        ok = status == 200 if cb.provider == "plivo" else status is not None and status < 300
        ok = ok and status is not None and status >= 200
        max_retries = (
            cfg.plivo_callback_retries if cb.provider == "plivo" else cfg.telnyx_callback_retries
        )
        with self._cv:
            cb.attempts.append(
                {
                    "attempt": attempt,
                    "at": utcnow().isoformat(),
                    "status_code": status,
                    "error": error,
                    "ok": ok,
                    "duplicate": job.duplicate,
                    "resend": job.resend,
                    "retry": job.retry,
                    "bad_signature": bad,
                    "elapsed_ms": round((self._clock() - started) * 1000, 1),
                }
            )
            self.counters["sent"] += 1
            self.counters["delivered" if ok else "failed"] += 1
            if bad:
                self.counters["bad_signature"] += 1
            if not ok and job.retry < max_retries and not self._stopping:
                intervals = cfg.callback_retry_intervals or [0.0]
                wait = intervals[min(job.retry, len(intervals) - 1)]
                self.counters["retried"] += 1
                self._push(
                    self._clock() + wait,
                    _Job(cb, duplicate=job.duplicate, resend=job.resend, retry=job.retry + 1),
                )
                self._cv.notify_all()

    # ---- inspection ----
    def log(
        self, provider: str | None = None, since_id: int = 0, limit: int = 1000
    ) -> list[dict[str, Any]]:
        with self._lock:
            out = [
                cb.as_dict()
                for cb in self._log
                if cb.id > since_id and (provider is None or cb.provider == provider)
            ]
        return out[:limit]

    def pending(self) -> int:
        with self._lock:
            return len(self._heap) + len(self._hold) + self._inflight

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is queued, held or being delivered (retries included)."""
        deadline = self._clock() + timeout
        with self._cv:
            while len(self._heap) + len(self._hold) + self._inflight:
                left = deadline - self._clock()
                if left <= 0:
                    return False
                self._cv.wait(min(left, 0.05))
        return True

    def counters_snapshot(self) -> dict[str, int]:
        with self._lock:
            out = dict(self.counters)
            out["pending"] = len(self._heap) + len(self._hold) + self._inflight
            return out

    def reset(self) -> None:
        with self._cv:
            self._heap.clear()
            self._hold.clear()
            self._log.clear()
            self.counters = dict.fromkeys(COUNTER_KEYS, 0)
            self._cv.notify_all()

    def seed(self, seed: int) -> None:
        with self._lock:
            self._rng.seed(seed)

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            self._heap.clear()
            self._hold.clear()
            self._cv.notify_all()
        for q in self._queues:
            q.put(None)
        for t in self._threads:
            t.join(timeout=2.0)
        self._client.close()
