"""Prometheus metrics shared by every process (web, worker, beat).

Counters and histograms use prometheus-client's multiprocess mode when
``PROMETHEUS_MULTIPROC_DIR`` is set (gunicorn workers and Celery processes on one host write
into that directory; ``/metrics`` aggregates it). Gauges about the data (links per state,
oldest pending link, inbox backlog) are computed from the database at scrape time, so they
are right however many processes and hosts run.

Wiring (the variable must be set before ``prometheus_client`` is first imported, because the
library picks its value store at import time):

- web: ``gunicorn --config python:webhooks.gunicorn_conf`` sets a default directory
  (``./var/metrics``) and removes a dead worker's live gauges (``child_exit``);
- worker: the Procfile exports the same directory before starting Celery;
- ``dlcsync run`` empties it at start, since it owns every process.

The directory is never emptied by web or worker: counters of exited processes stay counted,
which keeps every total monotonic across worker restarts. Empty it when the host boots (a
tmpfs path) or on deploy, while no process runs.
"""

from __future__ import annotations

import functools
import os

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

WEBHOOK_DELIVERIES = Counter(
    "dlcsync_webhook_deliveries_total",
    "Webhook deliveries by provider and answer (accepted, duplicate, unauthorized, ...)",
    ["provider", "outcome"],
)
INBOX_OUTCOMES = Counter(
    "dlcsync_inbox_outcomes_total",
    "Inbox rows processed, by provider and outcome (applied, duplicate, stale, ...)",
    ["provider", "outcome"],
)
PROVIDER_REQUESTS = Counter(
    "dlcsync_provider_requests_total",
    "Requests sent to providers by provider, endpoint and result",
    ["provider", "endpoint", "result"],
)
PROVIDER_LATENCY = Histogram(
    "dlcsync_provider_request_seconds",
    "Provider request latency",
    ["provider", "endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ALERT_DELIVERIES = Counter(
    "dlcsync_alert_deliveries_total",
    "Alert delivery attempts by result (sent, failed, gave_up)",
    ["result"],
)
EVENT_DELIVERIES = Counter(
    "dlcsync_event_deliveries_total",
    "Outbound event delivery attempts by result (delivered, retry, rejected, failed)",
    ["result"],
)

#: Webhook answers by HTTP status (DESIGN §4); 200 is "accepted" or "duplicate".
WEBHOOK_OUTCOME_BY_STATUS = {
    400: "malformed",
    401: "unauthorized",
    403: "unauthorized",
    413: "too_large",
    503: "unavailable",
}


def count_delivery(provider: str, outcome: str) -> None:
    """One webhook answer counted (per request: the labelled child is looked up once)."""
    _delivery_counter(provider, outcome).inc()


@functools.cache  # bounded: known providers (the view checks) times the outcomes above
def _delivery_counter(provider: str, outcome: str) -> Counter:
    return WEBHOOK_DELIVERIES.labels(provider, outcome)


def multiproc_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def status_class(status: int) -> str:
    """The ``result`` label of a provider answer: ``2xx``, ``4xx``, ``429``, ``5xx``..."""
    if status == 429:
        return "429"
    if 200 <= status < 600:
        return f"{status // 100}xx"
    return "error"


def render_latest(*extra: Collector) -> bytes:
    """The Prometheus text exposition: this host's counters plus ``extra`` collectors.

    In multiprocess mode the counters are read from the files of every process (live or
    exited) in ``PROMETHEUS_MULTIPROC_DIR``; otherwise from this process's registry.
    """
    if multiproc_dir():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call,unused-ignore]
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    if extra:
        scrape_time = CollectorRegistry(auto_describe=False)
        for collector in extra:
            scrape_time.register(collector)
        body += generate_latest(scrape_time)
    return body
