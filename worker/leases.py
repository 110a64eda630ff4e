"""Holding a reconcile run's claims: short leases renewed while it works, given back on shutdown.

A claim leases its links for ``CLAIM_LEASE`` (20 s: with a beat tick of 2 s, a dead run's
links are claimed again within DESIGN's 30 s). While the run works, a heartbeat thread
renews the lease every third of it, so a long run keeps its links and a dead one (SIGKILL, OOM)
loses them within one lease. On a graceful shutdown the run stops between campaigns and its
unfinished links are made due at once (``release_lease``), for another worker to take.

A renewal and a release only touch links still carrying this run's lease end: a link the run
has rescheduled, or one another claimer took after our lease lapsed, is left alone.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from types import FrameType

import sqlalchemy as sa

from models.db import transaction
from models.polling import CLAIM_LEASE, release_lease, renew_lease

log = logging.getLogger(__name__)

#: Set when this process is shutting down: runs stop between campaigns and give back the rest.
_stopping = threading.Event()
_held: set[HeldLease] = set()
_held_lock = threading.Lock()


class HeldLease:
    """The links one run claimed, and the end of their lease (the token renewals compare)."""

    def __init__(
        self,
        engine: sa.Engine,
        link_ids: Iterable[int],
        until: datetime,
        *,
        clock: Callable[[], datetime],
        lease: timedelta = CLAIM_LEASE,
    ) -> None:
        self.engine = engine
        self.ids = set(link_ids)
        self.until = until
        self.clock = clock
        self.lease = lease
        self._lock = threading.Lock()

    def renew(self) -> None:
        """Extend the lease of the links still held (the others are dropped)."""
        with self._lock:
            if not self.ids:
                return
            with transaction(self.engine) as session:
                self.ids, self.until = renew_lease(
                    session, self.ids, self.until, now=self.clock(), lease=self.lease
                )

    def release(self) -> int:
        """Make the links still held due now; nothing is held afterwards."""
        with self._lock:
            if not self.ids:
                return 0
            with transaction(self.engine) as session:
                released = release_lease(session, self.ids, self.until, now=self.clock())
            self.ids = set()
            return released

    @contextmanager
    def kept(self, every: float | None = None) -> Iterator[HeldLease]:
        """Renew every ``every`` seconds (a third of the lease) until the block ends; give the
        unfinished links back if it ends by an error or during a shutdown."""
        interval = self.lease.total_seconds() / 3 if every is None else every
        done = threading.Event()
        thread = threading.Thread(
            target=self._heartbeat, args=(done, interval), name="lease-heartbeat", daemon=True
        )
        with _held_lock:
            _held.add(self)
        thread.start()
        failed = True
        try:
            yield self
            failed = False
        finally:
            done.set()
            thread.join()
            with _held_lock:
                _held.discard(self)
            if failed or stopping():
                self._release_quietly()

    def _heartbeat(self, done: threading.Event, interval: float) -> None:
        while not done.wait(interval):
            try:
                self.renew()
            except Exception:
                # The database may be briefly away: the lease still runs; try again next beat.
                log.warning("lease renewal failed", exc_info=True)

    def _release_quietly(self) -> None:
        try:
            released = self.release()
        except Exception:
            log.warning("could not release claimed links; their lease runs out", exc_info=True)
            return
        if released:
            log.info("released %d claimed links", released)


def stopping() -> bool:
    """Whether this process is shutting down (a run stops between campaigns)."""
    return _stopping.is_set()


def request_stop() -> None:
    _stopping.set()


def holding() -> bool:
    with _held_lock:
        return any(held.ids for held in _held)


def on_sigterm(signum: int, _frame: FrameType | None) -> None:
    """A pool child's SIGTERM: unwind a run that holds claims, so they are released on the
    way out; otherwise die at once, as the child would by default."""
    request_stop()
    if holding():
        raise SystemExit(128 + signum)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
