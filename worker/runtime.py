"""What a worker process needs, built once per process (after the pool forks)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property

import redis
import sqlalchemy as sa
from celery import Celery

from common.settings import Settings
from models.db import make_engine
from models.polling import Cadence
from providers.base import CallbackHandler, ProviderClient, RateLimiter
from providers.registry import SPECS, Specs, build_callback_handlers, build_clients, rate_limits
from worker.preflight import Preflight
from worker.ratelimit import LocalRateLimiter, RedisRateLimiter
from worker.reconcile import Reconciler


@dataclass
class Runtime:
    settings: Settings
    #: None in a process that runs no Celery app (``dlcsync reconcile``).
    celery: Celery | None = None
    pid: int = field(default_factory=os.getpid)
    #: The providers to wire (tests pass a registry of their own).
    specs: Specs = field(default_factory=lambda: SPECS)

    @cached_property
    def engine(self) -> sa.Engine:
        return make_engine(self.settings.database_url)

    @cached_property
    def handlers(self) -> dict[str, CallbackHandler]:
        return build_callback_handlers(self.settings, self.specs)

    @cached_property
    def rates(self) -> dict[str, float]:
        """Requests per second allowed on each provider's account."""
        return rate_limits(self.settings, self.specs)

    @cached_property
    def limiters(self) -> dict[str, RateLimiter]:
        if self.settings.redis_url:
            client = redis.Redis.from_url(self.settings.redis_url, socket_timeout=5)
            return {p: RedisRateLimiter(client, p, rate) for p, rate in self.rates.items()}
        return {p: LocalRateLimiter(rate) for p, rate in self.rates.items()}

    @cached_property
    def clients(self) -> dict[str, ProviderClient]:
        return build_clients(self.settings, limiters=self.limiters, specs=self.specs)

    @cached_property
    def reconciler(self) -> Reconciler:
        s = self.settings
        cadence = Cadence(
            interval=s.poll_interval_seconds,
            cap=s.poll_backoff_cap_seconds,
            drift_check=s.drift_check_seconds,
        )
        return Reconciler(self.engine, self.clients, cadence, preflight=Preflight(self.engine))


_runtime: Runtime | None = None


def get_runtime(celery: Celery) -> Runtime:
    """The process's runtime; rebuilt in a forked child so no connection crosses a fork."""
    global _runtime
    if _runtime is None or _runtime.pid != os.getpid():
        _runtime = Runtime(Settings(), celery)
    return _runtime
