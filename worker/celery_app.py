"""The Celery composition root (``create_celery``), shared by the worker, beat and web.

Reliability settings (DESIGN §1): late acks, requeue when a worker process dies, prefetch 1,
JSON only, no result backend, bounded time limits, and a Redis visibility timeout above
them. Durable time lives in the database, never in long countdowns.

With no ``REDIS_URL`` the embedded broker is kombu's filesystem transport under ``./var/``:
no server, shared by the processes of one machine. It is for trying dlcsync out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery

from common.settings import Settings

TASK_SOFT_TIME_LIMIT = 240
TASK_TIME_LIMIT = 300
VISIBILITY_TIMEOUT = 3600  # above every time limit: Redis redelivers unacked after this

# Task names are stable: queued messages outlive deploys, and the web side enqueues by name.
PROCESS_INBOX = "dlcsync.process_inbox"
SWEEP_INBOX = "dlcsync.sweep_inbox"
RECONCILE = "dlcsync.reconcile"
DELIVER_ALERTS = "dlcsync.deliver_alerts"
DETECT_STUCK = "dlcsync.detect_stuck"
DELIVER_EVENTS = "dlcsync.deliver_events"
CHECK_CAMPAIGNS = "dlcsync.check_campaigns"
PURGE_INBOX = "dlcsync.purge_inbox"
ADOPT = "dlcsync.adopt"
#: An adoption lists a whole account: longer than the other tasks may take (still under
#: VISIBILITY_TIMEOUT, so Redis does not hand it to a second worker while it runs).
ADOPT_SOFT_TIME_LIMIT = 1740
ADOPT_TIME_LIMIT = 1800

BEAT_SCHEDULE_SECONDS = {
    SWEEP_INBOX: 10.0,
    RECONCILE: 2.0,
    DELIVER_ALERTS: 3.0,
    DETECT_STUCK: 60.0,
    DELIVER_EVENTS: 2.0,
    CHECK_CAMPAIGNS: 300.0,
    PURGE_INBOX: 600.0,
}


def broker_options(settings: Settings) -> tuple[str, dict[str, Any]]:
    if settings.redis_url:
        return settings.redis_url, {
            "visibility_timeout": VISIBILITY_TIMEOUT,
            "socket_connect_timeout": 1,
            "socket_timeout": 5,
            "max_retries": 0,
        }
    folder = Path("var/broker").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return "filesystem://", {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "store_processed": False,
    }


def create_celery(settings: Settings, *, beat_schedule: dict[str, float] | None = None) -> Celery:
    url, transport_options = broker_options(settings)
    app = Celery("dlcsync", broker=url, set_as_current=False)
    schedule = BEAT_SCHEDULE_SECONDS if beat_schedule is None else beat_schedule
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_backend=None,
        task_ignore_result=True,
        task_soft_time_limit=TASK_SOFT_TIME_LIMIT,
        task_time_limit=TASK_TIME_LIMIT,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        task_default_queue="dlcsync",
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        # A tick that waited longer than its interval is dropped, so ticks never pile up.
        beat_schedule={
            name: {"task": name, "schedule": seconds, "options": {"expires": seconds}}
            for name, seconds in schedule.items()
        },
        beat_schedule_filename=str(Path("var/celerybeat-schedule").resolve()),
    )
    return app


def enqueue(app: Celery, task_name: str, *args: Any) -> None:
    """Publish by name without retrying: callers treat a broker outage as "later"."""
    app.send_task(task_name, args=list(args), retry=False)


def ping(app: Celery) -> None:
    """Raise unless the broker answers within a second (``/readyz``)."""
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=0, timeout=1)
