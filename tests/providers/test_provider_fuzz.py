"""Whatever arrives, verifiers raise only VerificationError and parsers only CallbackParseError."""

from __future__ import annotations

import base64
import contextlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from providers.base import CallbackEvent, CallbackParseError, CallbackRequest, VerificationError
from providers.plivo import PlivoCallbackHandler
from providers.telnyx import TelnyxCallbackHandler

PUBLIC_KEY = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
HEADER_NAMES = st.sampled_from(
    [
        "X-Plivo-Signature-V3",
        "x-plivo-signature-ma-v3",
        "X-Plivo-Signature-V3-Nonce",
        "X-Plivo-Signature-V2",
        "X-Plivo-Signature-Ma-V2",
        "x-plivo-signature-v2-nonce",
        "telnyx-signature-ed25519",
        "Telnyx-Timestamp",
        "Content-Type",
    ]
) | st.text(max_size=20)
HEADER_VALUES = (
    st.text(max_size=200)
    | st.binary(min_size=0, max_size=80).map(lambda b: base64.b64encode(b).decode())
    | st.integers(min_value=-(10**30), max_value=10**30).map(str)
    | st.just("1723051357")
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
FIELD_NAMES = st.sampled_from(
    ["number", "Numbers", "phone_number", "status", "event", "campaign_id", "reason", "type"]
) | st.text(max_size=10)


def plivo_json(d: dict) -> bytes:
    return json.dumps(d, default=str).encode()


BODIES = (
    st.binary(max_size=400)
    | JSON.map(lambda v: json.dumps(v).encode())
    | st.dictionaries(FIELD_NAMES, JSON, max_size=6).map(plivo_json)
    | st.dictionaries(FIELD_NAMES, st.text(max_size=20), max_size=6).map(
        lambda d: "&".join(f"{k}={v}" for k, v in d.items()).encode("utf-8", "surrogatepass")
    )
)


def telnyx_doc(data: dict, payload: dict) -> bytes:
    return json.dumps({"data": {**data, "payload": payload}}, default=str).encode()


TELNYX_BODIES = BODIES | st.builds(
    telnyx_doc,
    st.fixed_dictionaries(
        {},
        optional={
            "id": JSON | st.uuids().map(str),
            "event_type": st.sampled_from(["10dlc.phone_number.update", "x"]) | JSON,
            "occurred_at": JSON | st.datetimes().map(lambda d: d.isoformat()),
        },
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "phoneNumber": JSON | st.just("+16715455939"),
            "campaignId": JSON,
            "status": JSON | st.sampled_from(["success", "failed", "ADDED"]),
            "type": JSON | st.sampled_from(["ASSIGNMENT", "DELETION", "STATUS_UPDATE"]),
            "reasons": JSON,
        },
    ),
)


def requests(bodies: st.SearchStrategy[bytes]) -> st.SearchStrategy[CallbackRequest]:
    return st.builds(
        CallbackRequest,
        method=st.sampled_from(["POST", "GET", "post", "PUT"]) | st.text(max_size=5),
        url=st.sampled_from(["https://svc.example.com/webhooks/plivo", "http://[::1"])
        | st.text(max_size=60),
        headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=8),
        body=bodies,
        content_type=st.sampled_from(["", "application/json", "application/x-www-form-urlencoded"])
        | st.text(max_size=20),
        query=st.dictionaries(FIELD_NAMES, st.text(max_size=20), max_size=4),
    )


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(requests(BODIES), st.floats(allow_nan=True) | st.none())
def test_plivo_verify_only_raises_verification_error(request, now) -> None:
    handler = PlivoCallbackHandler(["TESTAUTHTOKEN1234567890", "second"])
    with contextlib.suppress(VerificationError):
        handler.verify(request, now=now)


@FUZZ
@given(requests(BODIES))
def test_plivo_parse_only_raises_parse_error(request) -> None:
    try:
        event = PlivoCallbackHandler(["t"]).parse(request)
    except CallbackParseError:
        return
    assert isinstance(event, CallbackEvent)
    assert len(event.dedupe_key) == 64
    if event.relevant:
        assert event.number is not None and event.number.startswith("+")


@FUZZ
@given(requests(TELNYX_BODIES), st.floats(allow_nan=True) | st.none())
def test_telnyx_verify_only_raises_verification_error(request, now) -> None:
    with contextlib.suppress(VerificationError):
        TelnyxCallbackHandler(PUBLIC_KEY).verify(request, now=now)


@FUZZ
@given(requests(TELNYX_BODIES))
def test_telnyx_parse_only_raises_parse_error(request) -> None:
    try:
        event = TelnyxCallbackHandler(PUBLIC_KEY).parse(request)
    except CallbackParseError:
        return
    assert isinstance(event, CallbackEvent) and event.dedupe_key
    if event.relevant:
        assert event.number is not None and event.campaign_id
        assert event.provider_time is None or event.provider_time.utcoffset() is not None


@FUZZ
@given(st.text(max_size=80) | st.none())
def test_telnyx_any_key_string(key) -> None:
    handler = TelnyxCallbackHandler(key)
    with contextlib.suppress(VerificationError):
        handler.verify(
            CallbackRequest(
                method="POST",
                url="https://x",
                headers={"telnyx-timestamp": "1723051357", "telnyx-signature-ed25519": "A" * 88},
                body=b"{}",
            ),
            now=1723051357.0,
        )
