"""Builds the provider adapters from :class:`~common.settings.Settings`.

The only place in ``providers`` that reads settings: the adapter modules take plain values.
One pooled ``httpx.Client`` per provider account, built here once per process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import httpx

from .base import CallbackHandler, ProviderClient, RateLimiter
from .plivo import PlivoCallbackHandler, PlivoClient, make_plivo_http
from .telnyx import TelnyxCallbackHandler, TelnyxClient, make_telnyx_http

if TYPE_CHECKING:
    from common.settings import Settings

#: Where each provider's callbacks arrive, under ``PUBLIC_URL``.
CALLBACK_PATHS: Mapping[str, str] = {"plivo": "/webhooks/plivo", "telnyx": "/webhooks/telnyx"}


def callback_url(settings: Settings, provider: str) -> str:
    return settings.public_url.rstrip("/") + CALLBACK_PATHS[provider]


def build_clients(
    settings: Settings,
    limiters: Mapping[str, RateLimiter] | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
) -> dict[str, ProviderClient]:
    """API clients for the enabled providers (``transport`` is for tests)."""
    limiters = limiters or {}
    clients: dict[str, ProviderClient] = {}
    if settings.plivo_enabled and settings.plivo_auth_id and settings.plivo_auth_token:
        http = make_plivo_http(
            settings.plivo_api_url,
            settings.plivo_auth_id,
            settings.plivo_auth_token.get_secret_value(),
            transport=transport,
        )
        clients["plivo"] = PlivoClient(
            http,
            settings.plivo_auth_id,
            callback_url(settings, "plivo"),
            limiter=limiters.get("plivo"),
        )
    if settings.telnyx_enabled and settings.telnyx_api_key is not None:
        http = make_telnyx_http(
            settings.telnyx_api_url,
            settings.telnyx_api_key.get_secret_value(),
            transport=transport,
        )
        clients["telnyx"] = TelnyxClient(http, limiter=limiters.get("telnyx"))
    return clients


def build_callback_handlers(settings: Settings) -> dict[str, CallbackHandler]:
    """Callback handlers for both providers. Without credentials a handler refuses everything
    (a Plivo handler with no token, a Telnyx handler with no public key), so a stray callback
    gets a clear 403 instead of a 404."""
    token = settings.plivo_auth_token.get_secret_value() if settings.plivo_auth_token else ""
    return {
        "plivo": PlivoCallbackHandler([token] if token else []),
        "telnyx": TelnyxCallbackHandler(settings.telnyx_public_key),
    }
