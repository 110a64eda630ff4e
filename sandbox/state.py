"""The carrier model: pure, in-memory and thread-safe. No HTTP here.

Each (provider, number) has at most one record. Internal statuses:

============== ===================== =======================
internal       Plivo status          Telnyx assignmentStatus
============== ===================== =======================
pending_link   PROCESSING            PENDING_ASSIGNMENT
linked         COMPLETED             ASSIGNED
link_failed    FAILED                FAILED_ASSIGNMENT
pending_unlink COMPLETED (see docs)  PENDING_UNASSIGNMENT
unlink_failed  COMPLETED             FAILED_UNASSIGNMENT
============== ===================== =======================

A completed unlink removes the record (GET then answers "not linked" / 404).
Outcomes are decided when a request is accepted, from
``sha256(seed|provider|kind|number|campaign|request_count)``, so reruns give the same truth.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import heapq
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from sandbox.campaigns import DORMANT_REASON, Campaigns
from sandbox.config import SandboxConfig

PENDING_LINK = "pending_link"
LINKED = "linked"
LINK_FAILED = "link_failed"
PENDING_UNLINK = "pending_unlink"
UNLINK_FAILED = "unlink_failed"

PLIVO_STATUS = {
    PENDING_LINK: "PROCESSING",
    LINKED: "COMPLETED",
    LINK_FAILED: "FAILED",
    PENDING_UNLINK: "COMPLETED",
    UNLINK_FAILED: "COMPLETED",
}
TELNYX_STATUS = {
    PENDING_LINK: "PENDING_ASSIGNMENT",
    LINKED: "ASSIGNED",
    LINK_FAILED: "FAILED_ASSIGNMENT",
    PENDING_UNLINK: "PENDING_UNASSIGNMENT",
    UNLINK_FAILED: "FAILED_UNASSIGNMENT",
}
PROVIDERS = ("plivo", "telnyx")


class CarrierError(Exception):
    """A request the carrier refuses. ``kind`` is "conflict" or "not_found"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass
class Record:
    provider: str
    number: str  # E.164 with "+"
    campaign_id: str
    status: str
    created_at: datetime
    updated_at: datetime
    seq: int
    failure_reason: str | None = None
    due: float | None = None  # monotonic time at which the pending transition completes
    fail: bool = False  # the decided outcome of the pending transition
    fail_reason: str | None = None  # why, when the campaign (not chance) decided it
    version: int = 0
    request_count: int = 0
    callback_url: str | None = None  # Plivo: the url of the request in progress
    callback_method: str = "POST"

    def provider_status(self) -> str:
        table = PLIVO_STATUS if self.provider == "plivo" else TELNYX_STATUS
        return table[self.status]

    def snapshot(self, now: float) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "number": self.number,
            "campaign_id": self.campaign_id,
            "status": self.status,
            "provider_status": self.provider_status(),
            "failure_reason": self.failure_reason,
            "pending": self.due is not None,
            "due_in": None if self.due is None else max(0.0, round(self.due - now, 3)),
            "request_count": self.request_count,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True)
class Event:
    """Something a callback reports. ``phase`` is "accepted", "success" or "failed"."""

    provider: str
    kind: str  # "link" or "unlink"
    phase: str
    number: str
    campaign_id: str
    occurred_at: datetime
    reason: str | None = None
    callback_url: str | None = None
    callback_method: str = "POST"
    drift: bool = False


def outcome_fails(
    seed: int, provider: str, kind: str, number: str, campaign: str, count: int, ratio: float
) -> bool:
    """Deterministic: the same inputs always give the same outcome."""
    if ratio <= 0:
        return False
    if ratio >= 1:
        return True
    digest = hashlib.sha256(f"{seed}|{provider}|{kind}|{number}|{campaign}|{count}".encode())
    return int.from_bytes(digest.digest()[:8], "big") / 2**64 < ratio


def utcnow() -> datetime:
    return datetime.now(UTC)


class Carrier:
    def __init__(
        self,
        config: Callable[[], SandboxConfig],
        emit: Callable[[Event], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._emit = emit
        self._clock = clock
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._records: dict[tuple[str, str], Record] = {}
        self._counts: dict[tuple[str, str, str, str], int] = {}
        self._heap: list[tuple[float, int, tuple[str, str], int]] = []
        self._seq = 0
        #: Bumped when a record is added or removed or changes campaign (see :meth:`_listing`).
        self._membership = 0
        self._listings: tuple[int, dict[tuple[str, str | None], list[Record]]] = (-1, {})
        self.campaigns = Campaigns()

    # ---- helpers (call with the lock held) ----
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _schedule(self, rec: Record, kind: str, now: float) -> None:
        cfg = self._config()
        key = (rec.provider, kind, rec.number, rec.campaign_id)
        self._counts[key] = count = self._counts.get(key, 0) + 1
        ratio = cfg.link_failure_ratio if kind == "link" else cfg.unlink_failure_ratio
        rec.fail = outcome_fails(
            cfg.seed, rec.provider, kind, rec.number, rec.campaign_id, count, ratio
        )
        rec.request_count = count
        rec.failure_reason = None
        rec.fail_reason = None
        if kind == "link" and self.campaigns.wake(rec.provider, rec.campaign_id):
            rec.fail, rec.fail_reason = True, DORMANT_REASON
        rec.version += 1
        rec.due = now + cfg.delay
        rec.updated_at = utcnow()
        heapq.heappush(
            self._heap, (rec.due, self._next_seq(), (rec.provider, rec.number), rec.version)
        )
        self.changed.notify_all()

    def _event(self, rec: Record, kind: str, phase: str, **extra: Any) -> None:
        self._emit(
            Event(
                provider=rec.provider,
                kind=kind,
                phase=phase,
                number=rec.number,
                campaign_id=rec.campaign_id,
                occurred_at=utcnow(),
                callback_url=rec.callback_url,
                callback_method=rec.callback_method,
                **extra,
            )
        )

    def _new_record(self, provider: str, number: str, campaign: str) -> Record:
        now = utcnow()
        rec = Record(provider, number, campaign, PENDING_LINK, now, now, self._next_seq())
        old = self._records.get((provider, number))
        if old is not None:
            rec.version = old.version + 1
        self._records[(provider, number)] = rec
        self._membership += 1
        return rec

    def _complete(self, rec: Record) -> None:
        cfg = self._config()
        rec.due = None
        rec.version += 1
        rec.updated_at = utcnow()
        if rec.status == PENDING_LINK:
            if rec.fail:
                rec.status = LINK_FAILED
                rec.failure_reason = rec.fail_reason or cfg.link_failure_reason
                self._event(rec, "link", "failed", reason=rec.failure_reason)
            else:
                rec.status = LINKED
                self._event(rec, "link", "success")
        elif rec.status == PENDING_UNLINK:
            if rec.fail:
                rec.status = UNLINK_FAILED
                rec.failure_reason = cfg.unlink_failure_reason
                self._event(rec, "unlink", "failed", reason=rec.failure_reason)
            else:
                del self._records[(rec.provider, rec.number)]
                self._membership += 1
                self._event(rec, "unlink", "success")

    def advance(self, now: float | None = None) -> int:
        """Complete every transition that is due. Returns how many completed."""
        done = 0
        with self.lock:
            now = self._clock() if now is None else now
            while self._heap and self._heap[0][0] <= now:
                _, _, key, version = heapq.heappop(self._heap)
                rec = self._records.get(key)
                if rec is not None and rec.version == version and rec.due is not None:
                    self._complete(rec)
                    done += 1
        return done

    def settle(self) -> int:
        """Complete every pending transition now."""
        with self.lock:
            return self.advance(float("inf"))

    def next_due(self) -> float | None:
        with self.lock:
            return self._heap[0][0] if self._heap else None

    def reset(self) -> None:
        with self.lock:
            self._records.clear()
            self._membership += 1
            self.campaigns.reset()
            self._counts.clear()
            self._heap.clear()
            self.changed.notify_all()

    def _check_cap(self, provider: str, campaign: str, adding: int) -> None:
        """Refuse a link that would put more numbers on the campaign than its cap."""
        cap = self.campaigns.get(provider, campaign).max_numbers
        if cap is None:
            return
        held = sum(
            1
            for (p, _), r in self._records.items()
            if p == provider and r.campaign_id == campaign and r.status != LINK_FAILED
        )
        if held + adding > cap:
            raise CarrierError(
                "conflict", f"Campaign {campaign} has reached its limit of {cap} numbers"
            )

    def preload(self, provider: str, links: list[tuple[str, str, bool]]) -> int:
        """Links that existed before dlcsync: (E.164 number, campaign, pending). No callbacks;
        a pending one completes later like any other. Returns how many were created."""
        with self.lock:
            now = self._clock()
            for number, campaign, pending in links:
                rec = self._new_record(provider, number, campaign)
                if pending:
                    self._schedule(rec, "link", now)
                else:
                    rec.status = LINKED
            return len(links)

    # ---- reads ----
    def get(self, provider: str, number: str) -> Record | None:
        with self.lock:
            self.advance()
            rec = self._records.get((provider, number))
            return dataclasses.replace(rec) if rec else None

    def campaign_records(self, provider: str, campaign: str | None) -> list[Record]:
        """Copies of the records of ``campaign`` (None: all of ``provider``'s), oldest first."""
        with self.lock:
            self.advance()
            return [copy.copy(r) for r in self._listing(provider, campaign)]

    def records_page(
        self,
        provider: str,
        campaign: str | None,
        start: int,
        count: int,
        *,
        keep: Callable[[Record], bool] | None = None,
        order: Callable[[Record], Any] | None = None,
        reverse: bool = False,
    ) -> tuple[int, list[Record]]:
        """One page of :meth:`campaign_records` (only ``keep``'s, sorted by ``order``, else
        oldest first) and how many there are in all. Only the page is copied: a listing of
        50,000 records in pages of 100 must not copy 50,000 records for every page."""
        with self.lock:
            self.advance()
            recs = self._listing(provider, campaign)
            if keep is not None:
                recs = [r for r in recs if keep(r)]
            if order is not None:
                recs = sorted(recs, key=order, reverse=reverse)
            elif reverse:
                recs = recs[::-1]
            return len(recs), [copy.copy(r) for r in recs[start : start + count]]

    def campaign_ids(self, provider: str) -> set[str]:
        """The campaigns holding at least one of ``provider``'s records."""
        with self.lock:
            self.advance()
            self._listing(provider, None)
            return {c for p, c in self._listings[1] if p == provider and c is not None}

    def _listing(self, provider: str, campaign: str | None) -> list[Record]:
        """The live records of ``campaign`` (None: all of ``provider``'s) by ``seq``; call with
        the lock held. Every listing is rebuilt in one pass after a membership change (preload,
        link, unlink, move), so paging through an unchanged account costs a page, not a scan."""
        version, listings = self._listings
        if version != self._membership:
            listings = {}
            for (p, _), r in self._records.items():
                listings.setdefault((p, None), []).append(r)
                listings.setdefault((p, r.campaign_id), []).append(r)
            for recs in listings.values():
                recs.sort(key=attrgetter("seq"))
            self._listings = (self._membership, listings)
        return listings.get((provider, campaign), [])

    def snapshot(self, provider: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            self.advance()
            now = self._clock()
            out = [
                r.snapshot(now)
                for r in self._records.values()
                if provider is None or r.provider == provider
            ]
        out.sort(key=lambda d: (d["provider"], d["number"]))
        return out

    # ---- Plivo ----
    def plivo_link(self, campaign: str, numbers: list[str], url: str | None, method: str) -> None:
        """Link all ``numbers`` or none (the first refused number raises)."""
        with self.lock:
            self.advance()
            for number in numbers:
                rec = self._records.get(("plivo", number))
                if rec is None or rec.status == LINK_FAILED:
                    continue
                digits = number.lstrip("+")
                if rec.campaign_id != campaign:
                    raise CarrierError(
                        "conflict",
                        f"The number {digits} is already linked to campaign {rec.campaign_id}",
                    )
                if rec.status == PENDING_LINK:
                    raise CarrierError(
                        "conflict", f"The number {digits} is already requested for linking"
                    )
                raise CarrierError("conflict", f"The number {digits} is already linked")
            self._check_cap("plivo", campaign, len(numbers))
            now = self._clock()
            for number in numbers:
                rec = self._new_record("plivo", number, campaign)
                rec.callback_url, rec.callback_method = url, method
                self._schedule(rec, "link", now)
                self._event(rec, "link", "accepted")

    def plivo_unlink(self, campaign: str, number: str, url: str | None, method: str) -> None:
        with self.lock:
            self.advance()
            rec = self._records.get(("plivo", number))
            digits = number.lstrip("+")
            if rec is None or rec.campaign_id != campaign:
                raise CarrierError(
                    "not_found", f"The number {digits} is not linked to this campaign"
                )
            if rec.status == PENDING_LINK:
                raise CarrierError(
                    "conflict", f"The number {digits} is being processed for linking"
                )
            if rec.status == PENDING_UNLINK:
                raise CarrierError(
                    "conflict", f"The number {digits} is already requested for unlinking"
                )
            rec.status = PENDING_UNLINK
            rec.callback_url, rec.callback_method = url, method
            self._schedule(rec, "unlink", self._clock())
            self._event(rec, "unlink", "accepted")

    # ---- Telnyx ----
    def telnyx_assign(self, number: str, campaign: str) -> Record:
        with self.lock:
            self.advance()
            rec = self._records.get(("telnyx", number))
            if rec is not None and rec.status != LINK_FAILED:
                if rec.status == PENDING_UNLINK:
                    raise CarrierError("busy", f"{number} is being unassigned; retry later")
                if rec.campaign_id != campaign:
                    raise CarrierError(
                        "conflict",
                        f"{number} is already assigned to another campaign; "
                        "remove it first or use PUT",
                    )
                return dataclasses.replace(rec)  # idempotent: already requested/assigned
            self._check_cap("telnyx", campaign, 1)
            rec = self._new_record("telnyx", number, campaign)
            self._schedule(rec, "link", self._clock())
            self._event(rec, "link", "accepted")
            return dataclasses.replace(rec)

    def telnyx_update(self, number: str, campaign: str) -> Record:
        with self.lock:
            self.advance()
            rec = self._records.get(("telnyx", number))
            if rec is None:
                raise CarrierError("not_found", f"{number} is not assigned to a campaign")
            if rec.status == PENDING_UNLINK:
                raise CarrierError("busy", f"{number} is being unassigned; retry later")
            if rec.campaign_id == campaign and rec.status in (PENDING_LINK, LINKED):
                return dataclasses.replace(rec)
            self._check_cap("telnyx", campaign, 1)
            rec.campaign_id = campaign
            self._membership += 1
            rec.status = PENDING_LINK
            self._schedule(rec, "link", self._clock())
            self._event(rec, "link", "accepted")
            return dataclasses.replace(rec)

    def telnyx_delete(self, number: str) -> Record:
        with self.lock:
            self.advance()
            rec = self._records.get(("telnyx", number))
            if rec is None:
                raise CarrierError("not_found", f"{number} is not assigned to a campaign")
            if rec.status != PENDING_UNLINK:
                rec.status = PENDING_UNLINK
                self._schedule(rec, "unlink", self._clock())
                self._event(rec, "unlink", "accepted")
            return dataclasses.replace(rec)

    # ---- drift (behind dlcsync's back) ----
    def drift(
        self,
        provider: str,
        number: str,
        action: str,
        campaign_id: str | None = None,
        callback: bool = False,
    ) -> dict[str, Any] | None:
        with self.lock:
            self.advance()
            rec = self._records.get((provider, number))
            if action == "unlink":
                if rec is None:
                    raise CarrierError("not_found", f"{number} is not linked")
                del self._records[(provider, number)]
                self._membership += 1
                if callback:
                    self._event(rec, "unlink", "success", drift=True)
                return None
            if action == "move":
                if not campaign_id:
                    raise CarrierError("conflict", "move needs campaign_id")
                if rec is None:
                    rec = self._new_record(provider, number, campaign_id)
                rec.campaign_id = campaign_id
                self._membership += 1
                rec.status = LINKED
                rec.due = None
                rec.failure_reason = None
                rec.version += 1
                rec.updated_at = utcnow()
                if callback:
                    self._event(rec, "link", "success", drift=True)
                return rec.snapshot(self._clock())
            raise CarrierError("conflict", "action must be 'unlink' or 'move'")
