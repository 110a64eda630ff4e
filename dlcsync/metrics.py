"""Prometheus metrics shared by every process (web, worker, beat).

Counters and histograms use prometheus-client's multiprocess mode when
``PROMETHEUS_MULTIPROC_DIR`` is set (gunicorn workers and Celery processes on one host write
into that directory; ``/metrics`` aggregates it). Gauges about the data (links per state,
oldest pending link, inbox backlog) are computed from the database at scrape time, so they
are right however many processes and hosts run.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
