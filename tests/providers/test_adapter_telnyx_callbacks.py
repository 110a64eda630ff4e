"""Telnyx webhook signatures (REFERENCE §5.3 vector, cross-checked with the telnyx SDK) and
the webhook parser."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from nacl.signing import SigningKey
from telnyx.lib.webhook_verification import WebhookVerificationError, verify_webhook_signature

from models.statemachine import Direction, Signal
from providers.base import CallbackParseError, CallbackRequest, VerificationError
from providers.telnyx import TelnyxCallbackHandler, verify_signature

FIXTURES = Path(__file__).parent.parent / "fixtures" / "telnyx"
SEED = bytes.fromhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
PUBLIC_KEY = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
TIMESTAMP = "1723051357"
VECTOR_BODY = (FIXTURES / "webhook_vector_body.json").read_bytes()
VECTOR_SIG = (
    "n3VsegJ4JpnHgX621STKnpn++8gB6ayy10DnOSuwF0omGzq1uT0QA08HRe0kBz2FpNrvI1VYwuV2/xyu59caBQ=="
)


def request(body: bytes, headers: dict[str, str]) -> CallbackRequest:
    return CallbackRequest(
        method="POST",
        url="https://svc.example.com/webhooks/telnyx",
        headers=headers,
        body=body,
        content_type="application/json",
    )


def sign(body: bytes, ts: str, key: SigningKey | None = None) -> dict[str, str]:
    """Independent signer (PyNaCl), as Telnyx does it."""
    key = key or SigningKey(SEED)
    sig = key.sign(ts.encode() + b"|" + body).signature
    return {"Telnyx-Signature-Ed25519": base64.b64encode(sig).decode(), "Telnyx-Timestamp": ts}


def flip(sig: str) -> str:
    raw = bytearray(base64.b64decode(sig))
    raw[10] ^= 0x40
    return base64.b64encode(bytes(raw)).decode()


def test_vector_public_key_and_signature() -> None:
    assert base64.b64encode(bytes(SigningKey(SEED).verify_key)).decode() == PUBLIC_KEY
    assert sign(VECTOR_BODY, TIMESTAMP)["Telnyx-Signature-Ed25519"] == VECTOR_SIG


def test_vector_accepted_with_injected_clock() -> None:
    handler = TelnyxCallbackHandler(PUBLIC_KEY)
    headers = {"telnyx-signature-ed25519": VECTOR_SIG, "telnyx-timestamp": TIMESTAMP}
    handler.verify(request(VECTOR_BODY, headers), now=float(TIMESTAMP) + 299)
    handler.verify(request(VECTOR_BODY, headers), now=float(TIMESTAMP) - 299)
    TelnyxCallbackHandler(PUBLIC_KEY, clock=lambda: float(TIMESTAMP)).verify(
        request(VECTOR_BODY, headers)
    )


def test_vector_rejected_as_stale_with_real_clock() -> None:
    headers = {"telnyx-signature-ed25519": VECTOR_SIG, "telnyx-timestamp": TIMESTAMP}
    with pytest.raises(VerificationError, match="window"):
        TelnyxCallbackHandler(PUBLIC_KEY).verify(request(VECTOR_BODY, headers))
    with pytest.raises(WebhookVerificationError):
        verify_webhook_signature(VECTOR_BODY, headers, PUBLIC_KEY)


@pytest.mark.parametrize("offset", [301, -301])
def test_window_both_ways(offset) -> None:
    headers = {"telnyx-signature-ed25519": VECTOR_SIG, "telnyx-timestamp": TIMESTAMP}
    with pytest.raises(VerificationError):
        TelnyxCallbackHandler(PUBLIC_KEY).verify(
            request(VECTOR_BODY, headers), now=float(TIMESTAMP) + offset
        )


def test_sdk_and_we_agree_on_fresh_signatures() -> None:
    key = SigningKey.generate()
    public = base64.b64encode(bytes(key.verify_key)).decode()
    body = (FIXTURES / "webhook_status_update_added.json").read_bytes()
    headers = sign(body, str(int(time.time())), key)
    verify_webhook_signature(body, headers, public)  # the SDK accepts
    TelnyxCallbackHandler(public).verify(request(body, headers))  # and so do we

    bad = {**headers, "Telnyx-Signature-Ed25519": flip(headers["Telnyx-Signature-Ed25519"])}
    with pytest.raises(WebhookVerificationError):
        verify_webhook_signature(body, bad, public)
    with pytest.raises(VerificationError):
        TelnyxCallbackHandler(public).verify(request(body, bad))

    tampered = bytearray(body)
    tampered[5] ^= 1
    with pytest.raises(WebhookVerificationError):
        verify_webhook_signature(bytes(tampered), headers, public)
    with pytest.raises(VerificationError):
        TelnyxCallbackHandler(public).verify(request(bytes(tampered), headers))


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"telnyx-timestamp": TIMESTAMP},
        {"telnyx-signature-ed25519": VECTOR_SIG},
        {"telnyx-signature-ed25519": VECTOR_SIG, "telnyx-timestamp": "abc"},
        {"telnyx-signature-ed25519": VECTOR_SIG, "telnyx-timestamp": "9" * 5000},
        {"telnyx-signature-ed25519": VECTOR_SIG, "telnyx-timestamp": "-1723051357"},
        {"telnyx-signature-ed25519": VECTOR_SIG, "telnyx-timestamp": " 1723051357"},
        {"telnyx-signature-ed25519": VECTOR_SIG, "telnyx-timestamp": "1723051357\u3000"},
        {"telnyx-signature-ed25519": "!!!", "telnyx-timestamp": TIMESTAMP},
        {"telnyx-signature-ed25519": "QUFB", "telnyx-timestamp": TIMESTAMP},
        {"telnyx-signature-ed25519": "A" * 10_000, "telnyx-timestamp": TIMESTAMP},
        {"telnyx-signature-ed25519": VECTOR_SIG, "telnyx-timestamp": "1723051358"},
    ],
)
def test_malformed_headers(headers) -> None:
    with pytest.raises(VerificationError):
        TelnyxCallbackHandler(PUBLIC_KEY).verify(
            request(VECTOR_BODY, headers), now=float(TIMESTAMP)
        )


@pytest.mark.parametrize("key", [None, "", "not base64!", base64.b64encode(b"short").decode()])
def test_missing_or_bad_key_refuses(key) -> None:
    handler = TelnyxCallbackHandler(key)
    assert handler.key_error
    headers = {"telnyx-signature-ed25519": VECTOR_SIG, "telnyx-timestamp": TIMESTAMP}
    with pytest.raises(VerificationError):
        handler.verify(request(VECTOR_BODY, headers), now=float(TIMESTAMP))


def test_non_utf8_body_refused() -> None:
    body = b"\xff\xfe"
    headers = sign(body, TIMESTAMP)
    with pytest.raises(VerificationError):
        TelnyxCallbackHandler(PUBLIC_KEY).verify(request(body, headers), now=float(TIMESTAMP))


def test_helper_accepts_string_key() -> None:
    verify_signature(PUBLIC_KEY, TIMESTAMP, VECTOR_BODY, VECTOR_SIG, now=float(TIMESTAMP))
    with pytest.raises(VerificationError):
        verify_signature("AAAA", TIMESTAMP, VECTOR_BODY, VECTOR_SIG, now=float(TIMESTAMP))


# --- parsing -----------------------------------------------------------------------------------


def parse(body: bytes):
    return TelnyxCallbackHandler(PUBLIC_KEY).parse(request(body, {}))


def parse_fixture(name: str):
    return parse((FIXTURES / name).read_bytes())


def test_parse_assignment_success() -> None:
    event = parse_fixture("webhook_assignment_success.json")
    assert event.relevant
    assert event.dedupe_key == event.event_id == "123abc67-7a9d-4ebf-86b9-3df81e862d49"
    assert event.number == "+16715455939"
    assert event.campaign_id == "751c6a5c-907b-43a9-8ada-ba1dc8335b07"
    assert event.provider_status == "ASSIGNMENT:success"
    assert (event.signal, event.direction) == (Signal.LINKED, Direction.LINK)
    assert event.provider_time == datetime(2024, 8, 7, 17, 22, 37, 328000, tzinfo=UTC)
    assert event.provider_time.tzinfo is UTC
    assert event.reason is None


def test_parse_assignment_failed_with_reasons() -> None:
    event = parse_fixture("webhook_assignment_failed.json")
    assert (event.signal, event.direction) == (Signal.FAILED, Direction.LINK)
    assert event.reason == "Number is already assigned to another campaign"


def test_parse_reason_objects() -> None:
    doc = json.loads((FIXTURES / "webhook_assignment_failed.json").read_text())
    doc["data"]["payload"]["reasons"] = [
        {"fields": ["x"], "description": "a"},
        {"description": "b"},
    ]
    assert parse(json.dumps(doc).encode()).reason == "a; b"


def test_parse_deletion_and_status_update() -> None:
    event = parse_fixture("webhook_deletion_success.json")
    assert (event.signal, event.direction) == (Signal.NOT_LINKED, Direction.UNLINK)
    event = parse_fixture("webhook_status_update_added.json")
    assert (event.signal, event.direction) == (Signal.LINKED, None)
    assert event.provider_status == "STATUS_UPDATE:ADDED"


def test_parse_other_event_type_is_irrelevant() -> None:
    event = parse_fixture("webhook_campaign_verified.json")
    assert not event.relevant
    assert event.dedupe_key == "456abc67-7a9d-4ebf-86b9-3df81e862d49"
    assert "10dlc.campaign.update" in (event.ignore_reason or "")


def test_parse_unknown_payload_type_is_irrelevant() -> None:
    doc = json.loads((FIXTURES / "webhook_assignment_success.json").read_text())
    doc["data"]["payload"]["type"] = "CAMPAIGN_NUDGE"
    event = parse(json.dumps(doc).encode())
    assert not event.relevant and event.dedupe_key == doc["data"]["id"]


def test_parse_unknown_status_never_guessed() -> None:
    doc = json.loads((FIXTURES / "webhook_assignment_success.json").read_text())
    doc["data"]["payload"]["status"] = "partially"
    event = parse(json.dumps(doc).encode())
    assert event.relevant and event.signal is None and event.direction is None


def test_parse_naive_occurred_at_is_utc() -> None:
    doc = json.loads((FIXTURES / "webhook_assignment_success.json").read_text())
    doc["data"]["occurred_at"] = "2024-08-07T17:22:37"
    assert parse(json.dumps(doc).encode()).provider_time == datetime(
        2024, 8, 7, 17, 22, 37, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("data", "id"), None),
        (("data", "id"), 5),
        (("data", "payload"), None),
        (("data", "payload", "phoneNumber"), "16715455939"),
        (("data", "payload", "phoneNumber"), None),
        (("data", "payload", "campaignId"), None),
        (("data", "payload", "campaignId"), ["x"]),
        (("data", "payload", "status"), None),
        (("data", "payload", "type"), None),
        (("data", "occurred_at"), "not a time"),
        (("data",), "x"),
    ],
)
def test_parse_invalid_fields(path, value) -> None:
    doc = json.loads((FIXTURES / "webhook_assignment_success.json").read_text())
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(CallbackParseError):
        parse(json.dumps(doc).encode())


@pytest.mark.parametrize("body", [b"", b"\xff", b"[]", b"{", b"[" * 100_000, b'{"data": []}'])
def test_parse_garbage(body) -> None:
    with pytest.raises(CallbackParseError):
        parse(body)


# --- campaign ids and campaign events (issue 12 §1) ----------------------------------------


def test_status_update_names_both_campaign_ids() -> None:
    event = parse_fixture("webhook_status_update_added.json")
    assert event.campaign_id == "751c6a5c-907b-43a9-8ada-ba1dc8335b07"
    assert event.campaign_ids == ("751c6a5c-907b-43a9-8ada-ba1dc8335b07", "C6X6M95")
    # A link on the shared campaign's TCR id, or on the UUID, is this campaign; others are not.
    assert event.campaign_for("C6X6M95") == "C6X6M95"
    assert event.campaign_for("751c6a5c-907b-43a9-8ada-ba1dc8335b07") == event.campaign_id
    assert event.campaign_for("COTHER1") == event.campaign_id
    assert event.campaign_for(None) == event.campaign_id


def test_tcr_campaign_id_alone_names_the_campaign() -> None:
    doc = json.loads((FIXTURES / "webhook_status_update_added.json").read_text())
    del doc["data"]["payload"]["campaignId"]
    event = parse(json.dumps(doc).encode())
    assert event.relevant and event.campaign_id == "C6X6M95"
    assert event.campaign_ids == ("C6X6M95",)


def test_bad_tcr_campaign_id_is_malformed() -> None:
    doc = json.loads((FIXTURES / "webhook_status_update_added.json").read_text())
    doc["data"]["payload"]["tcrCampaignId"] = ["C6X6M95"]
    with pytest.raises(CallbackParseError):
        parse(json.dumps(doc).encode())


def test_flat_campaign_status_update_is_ignored() -> None:
    """The spec's ``campaignStatusUpdate`` callback has no ``data`` wrapper."""
    body = (FIXTURES / "webhook_campaign_status_update_flat.json").read_bytes()
    event = parse(body)
    assert not event.relevant and event.number is None
    assert event.provider_status == "NUMBER_POOL_PROVISIONED:ACCEPTED"
    assert "campaign status update" in (event.ignore_reason or "")
    # No event id: the same body is the same event, another body another one.
    assert event.dedupe_key == parse(body).dedupe_key
    assert event.dedupe_key != parse(body.replace(b"ACCEPTED", b"REJECTED")).dedupe_key


def test_campaign_update_without_id_is_ignored_not_refused() -> None:
    doc = json.loads((FIXTURES / "webhook_campaign_verified.json").read_text())
    del doc["data"]["id"]
    event = parse(json.dumps(doc).encode())
    assert not event.relevant and event.dedupe_key.startswith("sha256:")
