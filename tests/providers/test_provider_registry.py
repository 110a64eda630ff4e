"""Registry: which adapters exist for which settings, and how they are wired."""

from __future__ import annotations

import json

import httpx
from pydantic import SecretStr

from common.settings import Settings
from providers import plivo, telnyx
from providers.plivo import PlivoCallbackHandler, PlivoClient
from providers.registry import SPECS, build_callback_handlers, build_clients
from providers.telnyx import TelnyxCallbackHandler, TelnyxClient

PUBLIC_KEY = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class Limiter:
    def __init__(self) -> None:
        self.acquired = 0

    def acquire(self) -> None:
        self.acquired += 1

    def penalize(self, seconds: float) -> None:
        pass


def test_nothing_configured() -> None:
    assert build_clients(settings()) == {}
    handlers = build_callback_handlers(settings())
    assert isinstance(handlers["plivo"], PlivoCallbackHandler)
    assert handlers["plivo"].auth_tokens == []
    assert isinstance(handlers["telnyx"], TelnyxCallbackHandler)
    assert handlers["telnyx"].key is None


def test_both_configured_and_wired() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "plivo.test":
            return httpx.Response(202, json={"message": "ok"})
        return httpx.Response(
            200,
            json={
                "phoneNumber": "+15551234567",
                "campaignId": "C",
                "assignmentStatus": "PENDING_ASSIGNMENT",
            },
        )

    s = settings(
        plivo_auth_id="MAXXXXXXXXXXXXXXXXXX",
        plivo_auth_token=SecretStr("tok"),
        plivo_api_url="http://plivo.test/",
        telnyx_api_key=SecretStr("KEY"),
        telnyx_public_key=PUBLIC_KEY,
        telnyx_api_url="http://telnyx.test",
        public_url="https://svc.example.com/",
    )
    limiters = {"plivo": Limiter(), "telnyx": Limiter()}
    clients = build_clients(s, limiters, transport=httpx.MockTransport(handler))
    assert isinstance(clients["plivo"], PlivoClient)
    assert isinstance(clients["telnyx"], TelnyxClient)

    clients["plivo"].link("CUOGHIN", ["+12025551111"])
    clients["telnyx"].link("C", ["+15551234567"])
    plivo_request, telnyx_request = seen
    assert str(plivo_request.url) == (
        "http://plivo.test/v1/Account/MAXXXXXXXXXXXXXXXXXX/10dlc/Campaign/CUOGHIN/Number/"
    )
    assert json.loads(plivo_request.content)["url"] == "https://svc.example.com/webhooks/plivo"
    assert str(telnyx_request.url) == "http://telnyx.test/v2/10dlc/phone_number_campaigns"
    assert telnyx_request.headers["authorization"] == "Bearer KEY"
    assert limiters["plivo"].acquired == 1 and limiters["telnyx"].acquired == 1

    handlers = build_callback_handlers(s)
    assert handlers["plivo"].auth_tokens == ["tok"]  # type: ignore[attr-defined]
    assert handlers["telnyx"].key is not None  # type: ignore[attr-defined]


def test_each_spec_keeps_the_headers_its_handler_verifies_and_sizes_its_client() -> None:
    assert {*plivo.V3_HEADERS, plivo.V3_NONCE, *plivo.V2_HEADERS, plivo.V2_NONCE} <= (
        plivo.SPEC.kept_headers
    )
    assert {telnyx.SIGNATURE_HEADER, telnyx.TIMESTAMP_HEADER} <= telnyx.SPEC.kept_headers
    s = settings(
        plivo_auth_id="MAXXXXXXXXXXXXXXXXXX",
        plivo_auth_token=SecretStr("tok"),
        telnyx_api_key=SecretStr("KEY"),
    )
    clients = build_clients(s)
    assert list(SPECS) == ["plivo", "telnyx"]
    for name, spec in SPECS.items():
        assert clients[name].page_size == spec.page_size
        assert spec.enabled(s) and not spec.enabled(settings())
