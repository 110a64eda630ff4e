"""What the rest of dlcsync knows about a provider: one :class:`ProviderSpec` per provider.

Each provider module (``plivo.py``, ``telnyx.py``) ends with its ``SPEC``; ``registry.py``
lists them once in ``SPECS``. The worker, the webhook intake, the API and the CLI read the
specs, never a provider's name, so adding a provider is one module (with its spec), its tests
and one line in the registry. The typed settings stay in :mod:`common.settings` (the one place
that reads the environment); a spec only says which of them belong to its provider.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import httpx

from .base import CallbackHandler, ProviderClient, RateLimiter

if TYPE_CHECKING:
    from common.settings import Settings

#: A provider's own configuration (credentials, API URL), read from the settings.
Config = TypeVar("Config")


@dataclass(frozen=True)
class ClientWiring:
    """What the registry hands a provider's client factory besides its configuration."""

    #: ``PUBLIC_URL`` + the spec's callback path (for providers told where to call back).
    callback_url: str
    page_size: int
    limiter: RateLimiter | None = None
    #: Tests pass an ``httpx.MockTransport``.
    transport: httpx.BaseTransport | None = None


@dataclass(frozen=True)
class ProviderSpec(Generic[Config]):
    name: str
    #: The environment variables that turn the provider on (named in CLI errors, DESIGN §3).
    env: tuple[str, ...]
    #: The provider's configuration when its credentials are set; ``None``: not enabled.
    config: Callable[[Settings], Config | None]
    #: Requests per second allowed on the provider's account (shared by every process).
    rate_limit: Callable[[Settings], float]
    #: Records per page the client asks of the provider's list endpoint.
    page_size: int
    #: Request headers stored with each delivery: what verification and parsing need to replay.
    kept_headers: frozenset[str]
    #: Whether callbacks may come as GET (Plivo may send the callback ``method`` we ask for).
    accepts_get: bool
    #: The callback verifier and parser. Built even without credentials: it then refuses
    #: every callback, so a stray one gets a clear 401 rather than a 404.
    callback_handler: Callable[[Settings], CallbackHandler]
    #: The API client, from the configuration :attr:`config` returned.
    client: Callable[[Config, ClientWiring], ProviderClient]

    def enabled(self, settings: Settings) -> bool:
        return self.config(settings) is not None

    @property
    def callback_path(self) -> str:
        """Where its callbacks arrive, under ``PUBLIC_URL`` (``webhooks.intake`` serves
        ``/webhooks/<name>`` for every registered provider)."""
        return f"/webhooks/{self.name}"

    def callback_url(self, settings: Settings) -> str:
        return settings.public_url.rstrip("/") + self.callback_path

    def build_client(
        self,
        settings: Settings,
        *,
        limiter: RateLimiter | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> ProviderClient | None:
        """The API client, or ``None`` when the provider is not enabled."""
        config = self.config(settings)
        if config is None:
            return None
        wiring = ClientWiring(self.callback_url(settings), self.page_size, limiter, transport)
        return self.client(config, wiring)


#: A spec of any provider (the configuration type is the provider module's business).
AnySpec = ProviderSpec[Any]
