"""gunicorn settings for the web process: ``gunicorn --config python:webhooks.gunicorn_conf``.

Prometheus multiprocess mode (see :mod:`common.metrics`): the master sets
``PROMETHEUS_MULTIPROC_DIR`` (default ``./var/metrics``, shared with the Celery worker of the
same host) before any worker imports ``prometheus_client``, and ``child_exit`` tells the
library a worker is gone so its live gauges stop counting. Counters of exited workers stay.

At import this only sets the variable and creates the directory; the command line still sets
bind, workers and timeouts (the Procfile).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_dir = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or "var/metrics").resolve()
_dir.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_dir)


def child_exit(_server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call,unused-ignore]
