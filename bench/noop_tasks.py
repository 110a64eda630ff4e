"""A bench-only Celery app: dlcsync's tasks (worker.tasks) plus ``bench.noop``.

``celery -A bench.noop_tasks worker`` is dlcsync's worker with one more task, so the no-op
rate and the inbox rate are measured on the same worker.
"""

from __future__ import annotations

import os
import time

import redis

from worker.tasks import make_app

NOOP = "bench.noop"
MARK_KEY = "bench:noop:"

app = make_app()
_redis: list[redis.Redis] = []


@app.task(name=NOOP)
def noop(mark: str | None = None) -> None:
    """Nothing; the first and last task of a run write their time ("first"/"last")."""
    if mark:
        if not _redis:
            _redis.append(redis.Redis.from_url(os.environ["REDIS_URL"]))
        _redis[0].set(MARK_KEY + mark, repr(time.time()))
