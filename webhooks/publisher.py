"""Publishing stored deliveries to the worker off the request path, in batches.

The view commits the inbox row and hands its id to this publisher; a background thread
sends the waiting ids as one ``process_inbox`` task every few milliseconds, through the
one enqueue function of :mod:`worker.celery_app` (a fake in tests). The provider's
answer never waits for the broker, and the worker applies many rows per task (one commit
for the batch). An id that is never published (the broker is down, the process dies) is
still durable in the inbox: the sweeper enqueues it after ``SWEEP_SECONDS``.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from typing import Any

import structlog

from worker.celery_app import PROCESS_INBOX

log = structlog.get_logger(__name__)

#: Most ids per task, and how long the thread waits for more after the first.
MAX_BATCH = 100
LINGER_SECONDS = 0.005


class BatchPublisher:
    def __init__(self, enqueue: Callable[..., Any]) -> None:
        """``enqueue(task_name, *args)`` publishes a task; it raises when the broker is down."""
        self._enqueue = enqueue
        self._queue: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def submit(self, inbox_id: int) -> None:
        self._ensure_thread()
        self._queue.put(inbox_id)

    def _ensure_thread(self) -> None:
        # gunicorn forks after the app is built: each worker process needs its own thread.
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._queue = queue.SimpleQueue()
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="inbox-publisher", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            try:
                while len(batch) < MAX_BATCH:
                    batch.append(self._queue.get(timeout=LINGER_SECONDS))
            except queue.Empty:
                pass
            try:
                self._enqueue(PROCESS_INBOX, batch)
            except Exception as exc:  # broker down: the sweeper will enqueue these rows
                log.warning(
                    "publish failed; the sweeper will retry", rows=len(batch), error=str(exc)
                )
