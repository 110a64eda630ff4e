"""Both adapters against a running sandbox over real sockets: link, observe PROCESSING,
receive a correctly signed callback, observe the final status, unlink, see the number go."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from models.statemachine import Direction, Signal
from providers.base import CallbackRequest, NotLinked
from providers.plivo import PlivoCallbackHandler, PlivoClient, make_plivo_http
from providers.telnyx import TelnyxCallbackHandler, TelnyxClient, make_telnyx_http
from sandbox import SandboxHandle, start_sandbox
from tests.sandbox.conftest import Receiver, wait_for

NUMBER = "+12025550901"


@pytest.fixture
def live(receiver: Receiver) -> Iterator[SandboxHandle]:
    handle = start_sandbox(delay=0.2, seed=11, telnyx_webhook_url=f"{receiver.url}/webhooks/telnyx")
    yield handle
    handle.stop()


def as_request(received) -> CallbackRequest:  # type: ignore[no-untyped-def]
    headers = {k.lower(): v for k, v in received.headers.items()}
    return CallbackRequest(
        method=received.method,
        url=received.url,
        headers=headers,
        body=received.body,
        content_type=headers.get("content-type", ""),
    )


def test_plivo_adapter_round_trip(live: SandboxHandle, receiver: Receiver) -> None:
    env = live.env()
    client = PlivoClient(
        make_plivo_http(env["PLIVO_API_URL"], env["PLIVO_AUTH_ID"], env["PLIVO_AUTH_TOKEN"]),
        env["PLIVO_AUTH_ID"],
        f"{receiver.url}/webhooks/plivo",
    )
    handler = PlivoCallbackHandler([env["PLIVO_AUTH_TOKEN"]])
    (accepted,) = client.link("CPLIVO1", [NUMBER])
    assert (accepted.signal, accepted.direction) == (Signal.PENDING, Direction.LINK)
    assert client.get("CPLIVO1", NUMBER).provider_status == "PROCESSING"
    live.settle(wait_callbacks=True)
    events = []
    for received in receiver.wait(2):
        request = as_request(received)
        handler.verify(request)  # a correctly signed callback
        events.append(handler.parse(request))
    assert [(e.number, e.signal) for e in events] == [
        (NUMBER, Signal.PENDING),
        (NUMBER, Signal.LINKED),
    ]
    final = client.get("CPLIVO1", NUMBER)
    assert (final.provider_status, final.signal) == ("COMPLETED", Signal.LINKED)
    assert [s.number for s in client.list_campaign("CPLIVO1")] == [NUMBER]
    client.unlink("CPLIVO1", NUMBER)
    live.settle(wait_callbacks=True)
    with pytest.raises(NotLinked):
        client.get("CPLIVO1", NUMBER)
    assert client.list_campaign("CPLIVO1") == []


def test_telnyx_adapter_round_trip(live: SandboxHandle, receiver: Receiver) -> None:
    env = live.env()
    client = TelnyxClient(make_telnyx_http(env["TELNYX_API_URL"], env["TELNYX_API_KEY"]))
    handler = TelnyxCallbackHandler(env["TELNYX_PUBLIC_KEY"])
    (accepted,) = client.link("TCAMP-1", [NUMBER])
    assert accepted.provider_status == "PENDING_ASSIGNMENT"
    assert client.get("TCAMP-1", NUMBER).signal is Signal.PENDING
    live.settle(wait_callbacks=True)
    (received,) = receiver.wait(1)
    request = as_request(received)
    handler.verify(request)
    event = handler.parse(request)
    assert (event.number, event.campaign_id, event.signal) == (NUMBER, "TCAMP-1", Signal.LINKED)
    assert event.event_id and event.provider_time is not None
    assert client.get("TCAMP-1", NUMBER).provider_status == "ASSIGNED"
    client.unlink("TCAMP-1", NUMBER)
    live.settle(wait_callbacks=True)
    wait_for(lambda: len(receiver.requests) >= 2)
    deletion = handler.parse(as_request(receiver.requests[-1]))
    assert (deletion.signal, deletion.direction) == (Signal.NOT_LINKED, Direction.UNLINK)
    with pytest.raises(NotLinked):
        client.get("TCAMP-1", NUMBER)
    assert client.list_campaign("TCAMP-1") == []


def test_plivo_listing_stops_at_the_summary_total(live: SandboxHandle, receiver: Receiver) -> None:
    """40 numbers in pages of 20: two requests, not a third empty one."""
    env = live.env()
    client = PlivoClient(
        make_plivo_http(env["PLIVO_API_URL"], env["PLIVO_AUTH_ID"], env["PLIVO_AUTH_TOKEN"]),
        env["PLIVO_AUTH_ID"],
        f"{receiver.url}/webhooks/plivo",
    )
    numbers = [f"+1202555{i:04d}" for i in range(3000, 3040)]
    client.link("CPAGES1", numbers)

    def gets() -> int:
        plivo = live.counters()["requests"]["plivo"]
        return sum(sum(c.values()) for ep in plivo.values() for m, c in ep.items() if m == "GET")

    before = gets()
    assert sorted(s.number for s in client.list_campaign("CPAGES1")) == numbers
    assert gets() - before == 2
