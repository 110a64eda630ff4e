"""The providers dlcsync knows, registered in one place (:data:`SPECS`), and what is built
from them.

Adding a provider: its module with a ``SPEC`` (:class:`~providers.spec.ProviderSpec`), its
tests, and one line here. Every function takes ``specs`` so that tests can wire a registry of
their own (a fake provider) through the same code paths.
One pooled ``httpx.Client`` per provider account, built here once per process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import httpx

from . import plivo, telnyx
from .base import CallbackHandler, ProviderClient, RateLimiter
from .spec import AnySpec

if TYPE_CHECKING:
    from common.settings import Settings

Specs = Mapping[str, AnySpec]

SPECS: Specs = {spec.name: spec for spec in (plivo.SPEC, telnyx.SPEC)}


def enabled_providers(settings: Settings, specs: Specs = SPECS) -> list[str]:
    """The providers whose credentials are set, in registry order."""
    return [name for name, spec in specs.items() if spec.enabled(settings)]


def rate_limits(settings: Settings, specs: Specs = SPECS) -> dict[str, float]:
    """Requests per second per provider account, for every known provider."""
    return {name: spec.rate_limit(settings) for name, spec in specs.items()}


def build_clients(
    settings: Settings,
    limiters: Mapping[str, RateLimiter] | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
    specs: Specs = SPECS,
) -> dict[str, ProviderClient]:
    """API clients for the enabled providers (``transport`` is for tests)."""
    limiters = limiters or {}
    clients: dict[str, ProviderClient] = {}
    for name, spec in specs.items():
        client = spec.build_client(settings, limiter=limiters.get(name), transport=transport)
        if client is not None:
            clients[name] = client
    return clients


def build_callback_handlers(settings: Settings, specs: Specs = SPECS) -> dict[str, CallbackHandler]:
    """Callback handlers for every known provider. Without credentials a handler refuses
    everything (a Plivo handler with no token, a Telnyx handler with no public key), so a
    stray callback gets a clear 401 instead of a 404."""
    return {name: spec.callback_handler(settings) for name, spec in specs.items()}
