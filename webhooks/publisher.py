"""Publishing stored deliveries to the worker off the request path, in batches.

The view commits the inbox row and hands its id to this publisher; a background thread
sends the waiting ids as one ``process_inbox`` task, through the one enqueue function of
:mod:`worker.celery_app` (a fake in tests). The provider's answer never waits for the
broker, and the worker applies many rows per task (one commit for the batch). An id that is
never published (the broker is down, the process dies) is still durable in the inbox: the
sweeper enqueues it after ``SWEEP_SECONDS``.

The thread publishes at most once per :data:`INTERVAL_SECONDS`: a Celery publish costs about
0.5 ms of CPU under the GIL, so under load (hundreds of deliveries a second per process) one
task carries every id of the interval instead of one task per id or two, and the worker
applies them as one batch. A delivery after a quiet spell is published at once. ``submit``
only appends to a deque and wakes the thread when it sleeps, so the request path never hands
the GIL to the thread per id.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from worker.celery_app import PROCESS_INBOX

log = structlog.get_logger(__name__)

#: Most ids per task.
MAX_BATCH = 500
#: Least time between two publishes of one process (ids arriving meanwhile share a task).
INTERVAL_SECONDS = 0.1


class BatchPublisher:
    def __init__(self, enqueue: Callable[..., Any], *, interval: float = INTERVAL_SECONDS) -> None:
        """``enqueue(task_name, *args)`` publishes a task; it raises when the broker is down."""
        self._enqueue = enqueue
        self._interval = interval
        self._pending: collections.deque[int] = collections.deque()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def submit(self, inbox_id: int) -> None:
        self._ensure_thread()
        self._pending.append(inbox_id)
        if not self._wake.is_set():
            self._wake.set()

    def flush(self) -> int:
        """Publish every waiting id now, :data:`MAX_BATCH` per task; how many were sent."""
        sent = 0
        while self._pending:
            batch: list[int] = []
            try:
                while len(batch) < MAX_BATCH:
                    batch.append(self._pending.popleft())
            except IndexError:
                pass
            try:
                self._enqueue(PROCESS_INBOX, batch)
                sent += len(batch)
            except Exception as exc:  # broker down: the sweeper will enqueue these rows
                log.warning(
                    "publish failed; the sweeper will retry", rows=len(batch), error=str(exc)
                )
        return sent

    def _ensure_thread(self) -> None:
        # gunicorn forks after the app is built: each worker process needs its own thread
        # (and its own deque and event: a lock held in the parent at fork stays held).
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                if self._pid != os.getpid():
                    self._pending = collections.deque()
                    self._wake = threading.Event()
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="inbox-publisher", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        last = -self._interval
        while True:
            self._wake.wait()
            pause = last + self._interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # what arrives meanwhile goes in the same task
            # Cleared before draining: an id appended from here on sets the event again.
            self._wake.clear()
            last = time.monotonic()
            self.flush()
