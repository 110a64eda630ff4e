"""A third provider is one spec: the worker runtime, the webhook intake and the CLI take it
from a registry without any other module knowing its name (fakes of our interfaces)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import click
import pytest
from sqlmodel import Session, select

from common.settings import Settings
from dlcsync.commands._common import configured_providers, require_provider
from models.db import make_engine
from models.tables import InboxItem
from providers.base import (
    CallbackEvent,
    CallbackHandler,
    CallbackRequest,
    NumberStatus,
    ProviderClient,
    Trust,
    VerificationError,
)
from providers.registry import SPECS, Specs, build_clients, enabled_providers
from providers.spec import ClientWiring, ProviderSpec
from webhooks.app import create_app
from worker.ratelimit import LocalRateLimiter
from worker.runtime import Runtime

NAME = "acme"
SECRET = "acme-secret"


class AcmeClient(ProviderClient):
    name: ClassVar[str] = NAME

    def __init__(self, token: str, wiring: ClientWiring) -> None:
        self.token = token
        self.wiring = wiring
        self.page_size = wiring.page_size

    def link(self, campaign_id: str, numbers: list[str]) -> list[NumberStatus]:
        return [NumberStatus(n, campaign_id, "PENDING", None) for n in numbers]

    def unlink(self, campaign_id: str, number: str) -> NumberStatus:
        return NumberStatus(number, None, "GONE", None)

    def get(self, campaign_id: str, number: str) -> NumberStatus:
        return NumberStatus(number, campaign_id, "PENDING", None)

    def list_campaign(self, campaign_id: str) -> list[NumberStatus]:
        return []


class AcmeHandler(CallbackHandler):
    """Callbacks carry a shared secret in ``x-acme-secret`` and a JSON ``{"id", "number"}``."""

    name: ClassVar[str] = NAME

    def __init__(self, secret: str | None) -> None:
        self.secret = secret

    def verify(self, request: CallbackRequest, now: float | None = None) -> Trust:
        if not self.secret or request.headers.get("x-acme-secret") != self.secret:
            raise VerificationError("acme: wrong secret")
        return Trust.BODY

    def parse(self, request: CallbackRequest) -> CallbackEvent:
        body = json.loads(request.body)
        return CallbackEvent(dedupe_key=body["id"], relevant=True, number=body["number"])


def acme_registry(*, enabled: bool) -> Specs:
    spec: ProviderSpec[str] = ProviderSpec(
        name=NAME,
        env=("ACME_TOKEN",),
        config=lambda settings: "acme-token" if enabled else None,
        rate_limit=lambda settings: 7.0,
        page_size=3,
        kept_headers=frozenset({"content-type", "x-acme-secret"}),
        accepts_get=False,
        callback_handler=lambda settings: AcmeHandler(SECRET if enabled else None),
        client=AcmeClient,
    )
    return {**SPECS, NAME: spec}


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_the_runtime_wires_a_registered_provider() -> None:
    rt = Runtime(settings(public_url="https://svc.example.com"), specs=acme_registry(enabled=True))
    assert rt.rates[NAME] == 7.0
    limiter = rt.limiters[NAME]
    assert isinstance(limiter, LocalRateLimiter)
    assert set(rt.clients) == {NAME}  # neither Plivo nor Telnyx has credentials here
    client = rt.clients[NAME]
    assert isinstance(client, AcmeClient)
    assert client.token == "acme-token"
    assert client.page_size == 3
    assert client.wiring.limiter is limiter
    assert client.wiring.callback_url == "https://svc.example.com/webhooks/acme"
    assert isinstance(rt.handlers[NAME], AcmeHandler)


def test_a_provider_without_configuration_gets_no_client_but_a_refusing_handler() -> None:
    registry = acme_registry(enabled=False)
    assert build_clients(settings(), specs=registry) == {}
    assert enabled_providers(settings(), registry) == []
    assert Runtime(settings(), specs=registry).handlers[NAME].secret is None  # type: ignore[attr-defined]


def test_the_intake_serves_a_registered_provider(sqlite_url: str) -> None:
    registry = acme_registry(enabled=True)
    enqueued: list[Any] = []
    app = create_app(
        settings(database_url=sqlite_url),
        specs=registry,
        enqueue=lambda *args: enqueued.append(args),
        broker_ping=lambda: None,
    )
    client = app.test_client()
    body = {"id": "evt-1", "number": "+12025550101"}
    headers = {"X-Acme-Secret": SECRET, "X-Unrelated": "dropped", "Telnyx-Timestamp": "1"}

    answer = client.post(f"/webhooks/{NAME}", json=body, headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["duplicate"] is False
    assert client.post(f"/webhooks/{NAME}", json=body, headers=headers).get_json()["duplicate"]
    assert client.get(f"/webhooks/{NAME}", headers=headers).status_code == 405
    wrong = client.post(f"/webhooks/{NAME}", json=body, headers={"X-Acme-Secret": "no"})
    assert wrong.status_code == 401

    engine = make_engine(sqlite_url)
    with Session(engine) as session:
        (item,) = session.exec(select(InboxItem)).all()
    engine.dispose()
    app.extensions["dlcsync"].engine.dispose()
    assert (item.provider, item.dedupe_key) == (NAME, "evt-1")
    # Only the headers its spec keeps (and the request line), not another provider's.
    assert {k for k in item.headers if not k.startswith(":")} == {"content-type", "x-acme-secret"}


def test_the_cli_names_a_registered_providers_variables() -> None:
    with pytest.raises(click.UsageError, match="set ACME_TOKEN"):
        require_provider(settings(), NAME, acme_registry(enabled=False))
    require_provider(settings(), NAME, acme_registry(enabled=True))
    assert configured_providers(settings(), acme_registry(enabled=True)) == [NAME]
    with pytest.raises(click.UsageError, match=r"PLIVO_AUTH_ID and PLIVO_AUTH_TOKEN; .*ACME"):
        configured_providers(settings(), acme_registry(enabled=False))
