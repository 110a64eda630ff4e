"""Celery tasks: thin wrappers with stable names that call plain functions."""

from __future__ import annotations

import signal
from datetime import timedelta

from celery import Celery
from celery.signals import task_postrun, worker_process_init, worker_shutting_down

from common import crashpoints
from worker import adopt, alerting, events, hygiene, inbox, leases
from worker.celery_app import (
    ADOPT,
    ADOPT_SOFT_TIME_LIMIT,
    ADOPT_TIME_LIMIT,
    CHECK_CAMPAIGNS,
    DELIVER_ALERTS,
    DELIVER_EVENTS,
    DETECT_STUCK,
    PROCESS_INBOX,
    PURGE_INBOX,
    RECONCILE,
    SWEEP_INBOX,
    create_celery,
    enqueue,
)
from worker.runtime import get_runtime


def register(app: Celery) -> Celery:
    @app.task(name=PROCESS_INBOX)
    def process_inbox(inbox_ids: list[int]) -> dict[int, str]:
        rt = get_runtime(app)
        return inbox.process_inbox(rt.engine, rt.handlers, inbox_ids)

    @app.task(name=SWEEP_INBOX)
    def sweep_inbox() -> int:
        rt = get_runtime(app)
        return inbox.sweep_inbox(
            rt.engine,
            lambda ids: enqueue(app, PROCESS_INBOX, ids),
            grace=timedelta(seconds=rt.settings.sweep_seconds),
        )

    @app.task(name=PURGE_INBOX)
    def purge_inbox() -> int:
        """Delete processed inbox rows (and finished event deliveries) past
        INBOX_RETENTION_DAYS, in bounded batches."""
        rt = get_runtime(app)
        return inbox.purge_inbox(
            rt.engine, older_than=timedelta(days=rt.settings.inbox_retention_days)
        )

    @app.task(name=RECONCILE)
    def reconcile() -> int:
        """Send requested operations and poll due links, one bounded batch per provider."""
        rt = get_runtime(app)
        claimed = 0
        for provider in rt.clients:
            rate = rt.rates[provider]
            # Bounded so a run stays well inside the task time limit at the provider's rate.
            limit = max(10, min(500, int(rate * 60)))
            claimed += rt.reconciler.run_once(limit=limit, provider=provider).claimed
        return claimed

    @app.task(name=DELIVER_ALERTS)
    def deliver_alerts() -> int:
        """Send due alerts (digests for bursts); retries live in the alerts table."""
        rt = get_runtime(app)
        stats = alerting.deliver_alerts(rt.engine, rt.settings.alert_url_list)
        return stats.sent + stats.logged

    @app.task(name=DETECT_STUCK)
    def detect_stuck() -> int:
        rt = get_runtime(app)
        return alerting.detect_stuck(
            rt.engine, stuck_after=timedelta(seconds=rt.settings.stuck_after_seconds)
        )

    @app.task(name=ADOPT, soft_time_limit=ADOPT_SOFT_TIME_LIMIT, time_limit=ADOPT_TIME_LIMIT)
    def adopt_job(job_id: int) -> None:
        """``POST /api/v1/adopt``: the adoption of ``dlcsync adopt``, progress in its job row."""
        rt = get_runtime(app)
        adopt.run_adopt_job(rt.engine, rt.clients, job_id, rt.reconciler.cadence)

    @app.task(name=DELIVER_EVENTS)
    def deliver_events() -> int:
        """Fan out new audit rows and send due outbound events; retries live in the table."""
        rt = get_runtime(app)
        secret = rt.settings.event_webhook_secret
        stats = events.deliver_events(
            rt.engine,
            rt.settings.event_webhook_url_list,
            secret.get_secret_value() if secret else None,
        )
        return stats.results.get("delivered", 0)

    @app.task(name=CHECK_CAMPAIGNS)
    def check_campaigns() -> int:
        """Campaign hygiene: campaign_empty and campaign_failing alerts."""
        return hygiene.check_campaigns(get_runtime(app).engine)

    task_postrun.connect(_after_task, weak=False)
    worker_process_init.connect(_in_pool_child, weak=False)
    worker_shutting_down.connect(_shutting_down, weak=False)
    return app


def _in_pool_child(**_: object) -> None:
    # A prefork child dies of SIGTERM by default; a run holding claims releases them first.
    signal.signal(signal.SIGTERM, leases.on_sigterm)


def _shutting_down(**_: object) -> None:
    # Solo/threads pools run tasks here: a run stops between campaigns and releases the rest.
    leases.request_stop()


def _after_task(**_: object) -> None:
    # The task's transactions are committed; with acks_late the message is not acked yet.
    crashpoints.reach("task.after_commit")


def make_app() -> Celery:
    from common.logs import bind_celery_task_ids, configure_logging
    from common.settings import Settings

    configure_logging()
    app = register(create_celery(Settings()))
    bind_celery_task_ids(app)
    return app
