"""``GET /metrics``: Prometheus text format.

Two kinds of series:

- counters and histograms of what the processes did (webhook answers, inbox outcomes,
  provider requests, alert deliveries; :mod:`common.metrics`), aggregated over every
  gunicorn worker and Celery process of the host in multiprocess mode;
- gauges about the data, computed from the database at scrape time by
  :class:`DatabaseCollector`: links per provider and state, age of the oldest pending link,
  inbox backlog, alerts per state, age of the oldest undelivered outbound event. A scrape
  that cannot reach the database still answers 200, with ``dlcsync_database_up 0`` and
  without those gauges.

No authentication, as is usual for scrape targets: the page shows counts, never numbers or
secrets. Bind it privately: let the load balancer or reverse proxy refuse ``/metrics`` from
the internet, or scrape the web process on its private address.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import sqlalchemy as sa
import structlog
from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlmodel import Session

from common.metrics import render_latest
from models import events, reports
from models.statemachine import State
from models.tables import utcnow
from providers.registry import enabled_providers
from webhooks.services import services

bp = Blueprint("metrics", __name__)
log = structlog.get_logger(__name__)


class DatabaseCollector(Collector):
    """Gauges read from the database when Prometheus scrapes (right across hosts)."""

    def __init__(self, engine: sa.Engine, providers: list[str], now: datetime | None = None):
        self.engine = engine
        self.providers = providers
        self.now = now

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "dlcsync_database_up", "1 when /metrics could read the database, else 0"
        )
        try:
            with Session(self.engine) as session:
                families = self._families(session, self.now or utcnow())
        except sa.exc.SQLAlchemyError as exc:
            log.warning("metrics: database unavailable", error=str(exc).splitlines()[0])
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self, session: Session, now: datetime) -> list[Metric]:
        states = reports.provider_state_counts(session)
        oldest = reports.oldest_pending_by_provider(session)
        backlog = reports.inbox_backlog_by_provider(session)
        alerts = reports.alert_state_counts(session)
        providers = sorted({*self.providers, *(p for p, _ in states), *backlog})

        links = GaugeMetricFamily(
            "dlcsync_links", "Links per provider and state", labels=["provider", "state"]
        )
        for provider in providers:
            for state in State:
                links.add_metric([provider, state.value], states.get((provider, state.value), 0))
        for (provider, name), count in sorted(states.items()):
            if name not in State.__members__:  # a state this build does not know
                links.add_metric([provider, name], count)

        age = GaugeMetricFamily(
            "dlcsync_oldest_pending_link_age_seconds",
            "Age of the oldest pending request (since its generation started); 0 if none",
            labels=["provider"],
        )
        for provider in providers:
            started = oldest.get(provider)
            age.add_metric([provider], max(0.0, (now - started).total_seconds()) if started else 0)

        inbox = GaugeMetricFamily(
            "dlcsync_inbox_backlog",
            "Stored webhook deliveries without an outcome yet",
            labels=["provider"],
        )
        for provider in providers:
            inbox.add_metric([provider], backlog.get(provider, 0))

        alert_family = GaugeMetricFamily(
            "dlcsync_alerts", "Alerts in the outbox per state", labels=["state"]
        )
        for alert_state in sorted({"pending", "sent", "failed", *alerts}):
            alert_family.add_metric([alert_state], alerts.get(alert_state, 0))
        oldest_event = events.oldest_undelivered(session)
        event_age = GaugeMetricFamily(
            "dlcsync_oldest_undelivered_event_age_seconds",
            "Age of the oldest outbound event not yet delivered to every URL; 0 if none",
        )
        event_age.add_metric(
            [], max(0.0, (now - oldest_event).total_seconds()) if oldest_event else 0
        )
        return [links, age, inbox, alert_family, event_age]


@bp.get("/metrics")
def metrics() -> Response:
    svc = services()
    collector = DatabaseCollector(svc.engine, enabled_providers(svc.settings, svc.specs))
    return Response(render_latest(collector), content_type=CONTENT_TYPE_LATEST)
