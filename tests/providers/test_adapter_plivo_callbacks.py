"""Plivo callback signatures (REFERENCE §3 vectors, cross-checked with the plivo SDK) and
the tolerant callback parser."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import urlencode

import pytest
from plivo.utils import validate_signature
from plivo.utils.signature_v3 import validate_v3_signature

from models.statemachine import Direction, Signal
from providers.base import CallbackParseError, CallbackRequest, Trust, VerificationError
from providers.plivo import (
    PlivoCallbackHandler,
    compute_signature_v2,
    compute_signature_v3,
    v3_string_to_sign,
)

CALL_PARAMS = {
    "CallUUID": "4vbcpem8-0u46-x1ha-9af1-438vc92bf374",
    "Digits": "1234",
    "From": "+15551111111",
    "To": "+15555555555",
}
NONCE = "kjsdhfsd87sd7yisud2"
DLC_URL = "https://hooks.example.com/webhooks/plivo/10dlc?tenant=acme"
DLC_PARAMS = {
    "campaign_id": "CUOGHIN",
    "number": "12025551111",
    "status": "success",
    "event": "number_linking",
}
DLC_TOKEN = "TESTAUTHTOKEN1234567890"
DLC_NONCE = "05429567804466091622"

V3_VECTORS = [
    ("MY_AUTH_TOKEN", "POST", "https://example.com/abcd?foo=bar", CALL_PARAMS, NONCE,
     "Ug6FvQ3HEouDQkU6MBoCeTZ6ZgtrKFrogoEfmqhZ+No="),
    ("plivo_test_auth_token", "POST", "https://example.com/abcd?foo=bar", CALL_PARAMS, NONCE,
     "Rd0E/xpBKM9WgLTg4CX7mKwJlvGex3GvJivzq1ESO6c="),
    ("MY_AUTH_TOKEN", "POST", "https://example.com/abcd",
     {"To": "+15555555555", "From": "+15551111111"}, NONCE,
     "9m5ASY9CQubrHMzy/yhkRhJEyKQW2d1wZTevE90Iz14="),
    ("MY_AUTH_TOKEN", "POST", "https://example.com/abcd", {}, NONCE,
     "Kx7Z14PWEmmkgBP9t+pw62awdxyddHUzKOesUeswGM0="),
    ("MY_AUTH_TOKEN", "GET", "https://example.com/abcd", {}, NONCE,
     "Kx7Z14PWEmmkgBP9t+pw62awdxyddHUzKOesUeswGM0="),
    ("MY_AUTH_TOKEN", "GET", "https://example.com/abcd?foo=bar", {"b": "2", "a": "1"}, NONCE,
     "TCVtIFtK596rigUJbk2bbz9LLumQECEyLXH0lUlYZGM="),
    (DLC_TOKEN, "POST", DLC_URL, DLC_PARAMS, DLC_NONCE,
     "qWT6FJdmuPbQ7UBWILGZDfXyELHyTL70ao/yd789Xyo="),
    (DLC_TOKEN, "GET", "https://hooks.example.com/webhooks/plivo/10dlc?tenant=acme&"
     + urlencode(DLC_PARAMS), {}, DLC_NONCE,
     "ePzaitS8KfWEoNSQ23rvV30qKmhsG8X+Va0XDNabeIg="),
]  # fmt: skip


@pytest.mark.parametrize(("token", "method", "url", "params", "nonce", "expected"), V3_VECTORS)
def test_v3_vectors(token, method, url, params, nonce, expected) -> None:
    assert compute_signature_v3(token, method, url, params, nonce) == expected
    assert validate_v3_signature(method, url, nonce, token, expected, dict(params))


def test_v3_strings_to_sign_match_reference() -> None:
    assert v3_string_to_sign("POST", "https://example.com/abcd?foo=bar", CALL_PARAMS, NONCE) == (
        "https://example.com/abcd?foo=bar.CallUUID4vbcpem8-0u46-x1ha-9af1-438vc92bf374"
        "Digits1234From+15551111111To+15555555555.kjsdhfsd87sd7yisud2"
    )
    assert v3_string_to_sign(
        "POST", "https://example.com/abcd", {"To": "+15555555555", "From": "+15551111111"}, NONCE
    ) == ("https://example.com/abcd?From+15551111111To+15555555555.kjsdhfsd87sd7yisud2")
    assert v3_string_to_sign("POST", "https://example.com/abcd", {}, NONCE) == (
        "https://example.com/abcd.kjsdhfsd87sd7yisud2"
    )
    assert v3_string_to_sign(
        "GET", "https://example.com/abcd?foo=bar", {"b": 2, "a": 1}, NONCE
    ) == ("https://example.com/abcd?a=1&b=2&foo=bar.kjsdhfsd87sd7yisud2")


def test_v2_vector() -> None:
    expected = "UMZpS/btRIWpHNMF5+PFTzwdSC/mCv/bf1d+Td+bEE0="
    assert compute_signature_v2(DLC_TOKEN, DLC_URL, DLC_NONCE) == expected
    assert validate_signature(DLC_URL, DLC_NONCE, expected, DLC_TOKEN)


# --- independent signer vs. our verifier vs. the SDK --------------------------------------------


def independent_v3(token: str, url_with_params: str, nonce: str) -> str:
    """Written from the docs, not from our module: HMAC-SHA256(token, string + "." + nonce)."""
    mac = hmac.new(token.encode(), f"{url_with_params}.{nonce}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def form_request(body: bytes, headers: dict[str, str], url: str = DLC_URL) -> CallbackRequest:
    return CallbackRequest(
        method="POST",
        url=url,
        headers=headers,
        body=body,
        content_type="application/x-www-form-urlencoded",
    )


def flip(sig: str) -> str:
    raw = bytearray(base64.b64decode(sig))
    raw[0] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def test_independent_signer_accepted_by_sdk_and_us() -> None:
    params = {"status": "failed", "number": "12025551111", "event": "number_unlinking"}
    signed = "https://hooks.example.com/webhooks/plivo/10dlc?tenant=acme." + "".join(
        f"{k}{params[k]}" for k in sorted(params)
    )
    sig = independent_v3(DLC_TOKEN, signed, "n1")
    assert validate_v3_signature("POST", DLC_URL, "n1", DLC_TOKEN, sig, dict(params))
    handler = PlivoCallbackHandler([DLC_TOKEN])
    headers = {"X-Plivo-Signature-V3": sig, "X-Plivo-Signature-V3-Nonce": "n1"}
    handler.verify(form_request(urlencode(params).encode(), headers))

    bad = flip(sig)
    assert not validate_v3_signature("POST", DLC_URL, "n1", DLC_TOKEN, bad, dict(params))
    with pytest.raises(VerificationError):
        handler.verify(
            form_request(urlencode(params).encode(), {**headers, "X-Plivo-Signature-V3": bad})
        )
    # One changed byte of the body is refused too.
    tampered = urlencode({**params, "status": "success"}).encode()
    with pytest.raises(VerificationError):
        handler.verify(form_request(tampered, headers))


def test_v2_independent_signer() -> None:
    mac = hmac.new(
        DLC_TOKEN.encode(), b"https://hooks.example.com/webhooks/plivo/10dlcNONCE", hashlib.sha256
    )
    sig = base64.b64encode(mac.digest()).decode()
    assert validate_signature(DLC_URL, "NONCE", sig, DLC_TOKEN)
    handler = PlivoCallbackHandler([DLC_TOKEN])
    headers = {"x-plivo-signature-v2": sig, "x-plivo-signature-v2-nonce": "NONCE"}
    assert handler.verify(form_request(b"status=success", headers)) is Trust.SENDER
    assert not validate_signature(DLC_URL, "NONCE", flip(sig), DLC_TOKEN)
    with pytest.raises(VerificationError):
        handler.verify(
            form_request(b"status=success", {**headers, "x-plivo-signature-v2": flip(sig)})
        )


# --- handler policy ---------------------------------------------------------------------------

DLC_BODY = urlencode(DLC_PARAMS).encode()
DLC_SIG = "qWT6FJdmuPbQ7UBWILGZDfXyELHyTL70ao/yd789Xyo="
V2_SIG = "UMZpS/btRIWpHNMF5+PFTzwdSC/mCv/bf1d+Td+bEE0="


def test_reference_headers_verify() -> None:
    handler = PlivoCallbackHandler([DLC_TOKEN])
    handler.verify(
        form_request(
            DLC_BODY,
            {
                "X-Plivo-Signature-V3-Nonce": DLC_NONCE,
                "X-Plivo-Signature-V3": DLC_SIG,
                "X-Plivo-Signature-V2-Nonce": DLC_NONCE,
                "X-Plivo-Signature-V2": V2_SIG,
            },
        )
    )


def test_comma_separated_and_ma_and_any_token() -> None:
    handler = PlivoCallbackHandler(["other-token", DLC_TOKEN])
    handler.verify(
        form_request(
            DLC_BODY,
            {
                "X-Plivo-Signature-Ma-V3": f"bogus,{DLC_SIG}",
                "X-Plivo-Signature-V3-Nonce": DLC_NONCE,
            },
        )
    )


def test_v3_wrong_is_refused_even_with_a_good_v2() -> None:
    """Issue 12 §2: V2 signs no body, so it must not rescue a V3 signature that fails."""
    handler = PlivoCallbackHandler([DLC_TOKEN])
    with pytest.raises(VerificationError, match="V3"):
        handler.verify(
            form_request(
                DLC_BODY,
                {
                    "X-Plivo-Signature-V3-Nonce": DLC_NONCE,
                    "X-Plivo-Signature-V3": flip(DLC_SIG),
                    "X-Plivo-Signature-V2-Nonce": DLC_NONCE,
                    "X-Plivo-Signature-Ma-V2": V2_SIG,
                },
            )
        )


def test_v2_alone_vouches_for_the_sender_only() -> None:
    handler = PlivoCallbackHandler([DLC_TOKEN])
    v2 = {"X-Plivo-Signature-V2-Nonce": DLC_NONCE, "X-Plivo-Signature-V2": V2_SIG}
    forged = urlencode({**DLC_PARAMS, "status": "failed", "reason": "attacker"}).encode()
    assert handler.verify(form_request(forged, v2)) is Trust.SENDER
    assert handler.nonce(form_request(forged, v2)) == DLC_NONCE


def test_v3_nonce_without_v3_signature_is_refused_despite_v2() -> None:
    handler = PlivoCallbackHandler([DLC_TOKEN])
    headers = {
        "X-Plivo-Signature-V3-Nonce": DLC_NONCE,
        "X-Plivo-Signature-V2-Nonce": DLC_NONCE,
        "X-Plivo-Signature-V2": V2_SIG,
    }
    with pytest.raises(VerificationError):
        handler.verify(form_request(DLC_BODY, headers))


def test_v3_over_the_body_vouches_for_the_body() -> None:
    handler = PlivoCallbackHandler([DLC_TOKEN])
    headers = {
        "X-Plivo-Signature-V3-Nonce": DLC_NONCE,
        "X-Plivo-Signature-V3": DLC_SIG,
        "X-Plivo-Signature-V2-Nonce": "v2-nonce",
        "X-Plivo-Signature-V2": V2_SIG,
    }
    assert handler.verify(form_request(DLC_BODY, headers)) is Trust.BODY
    assert handler.nonce(form_request(DLC_BODY, headers)) == DLC_NONCE


def test_get_callback_verifies_with_query_in_url() -> None:
    url = "https://hooks.example.com/webhooks/plivo/10dlc?tenant=acme&" + urlencode(DLC_PARAMS)
    request = CallbackRequest(
        method="GET",
        url=url,
        headers={
            "X-Plivo-Signature-V3": "ePzaitS8KfWEoNSQ23rvV30qKmhsG8X+Va0XDNabeIg=",
            "X-Plivo-Signature-V3-Nonce": DLC_NONCE,
        },
        body=b"",
        query={**DLC_PARAMS, "tenant": "acme"},
    )
    handler = PlivoCallbackHandler([DLC_TOKEN])
    handler.verify(request)
    event = handler.parse(request)
    assert (event.signal, event.direction) == (Signal.LINKED, Direction.LINK)


def test_json_body_signed_with_params_or_without() -> None:
    body = json.dumps(DLC_PARAMS).encode()
    handler = PlivoCallbackHandler([DLC_TOKEN])
    with_params = compute_signature_v3(DLC_TOKEN, "POST", DLC_URL, DLC_PARAMS, "n")
    without = compute_signature_v3(DLC_TOKEN, "POST", DLC_URL, {}, "n")
    for sig, trust in ((with_params, Trust.BODY), (without, Trust.SENDER)):
        request = CallbackRequest(
            method="POST",
            url=DLC_URL,
            headers={"X-Plivo-Signature-V3": sig, "X-Plivo-Signature-V3-Nonce": "n"},
            body=body,
            content_type="application/json",
        )
        assert handler.verify(request) is trust
        assert validate_v3_signature("POST", DLC_URL, "n", DLC_TOKEN, with_params, dict(DLC_PARAMS))


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Plivo-Signature-V3": DLC_SIG},  # no nonce
        {"X-Plivo-Signature-V3-Nonce": DLC_NONCE},  # no signature
        {"X-Plivo-Signature-V3": DLC_SIG, "X-Plivo-Signature-V3-Nonce": "other"},
        {"X-Plivo-Signature-V3": "x" * 100_000, "X-Plivo-Signature-V3-Nonce": DLC_NONCE},
        {"X-Plivo-Signature-V3": "é,ü", "X-Plivo-Signature-V3-Nonce": DLC_NONCE},
        {"X-Plivo-Signature-V2": V2_SIG, "X-Plivo-Signature-V2-Nonce": "other"},
    ],
)
def test_rejections(headers) -> None:
    with pytest.raises(VerificationError):
        PlivoCallbackHandler([DLC_TOKEN]).verify(form_request(DLC_BODY, headers))


def test_no_token_refuses_everything() -> None:
    headers = {"X-Plivo-Signature-V3": DLC_SIG, "X-Plivo-Signature-V3-Nonce": DLC_NONCE}
    with pytest.raises(VerificationError):
        PlivoCallbackHandler([]).verify(form_request(DLC_BODY, headers))


def test_signature_depends_on_public_url() -> None:
    headers = {"X-Plivo-Signature-V3": DLC_SIG, "X-Plivo-Signature-V3-Nonce": DLC_NONCE}
    with pytest.raises(VerificationError):
        PlivoCallbackHandler([DLC_TOKEN]).verify(
            form_request(
                DLC_BODY, headers, url="http://internal:8000/webhooks/plivo/10dlc?tenant=acme"
            )
        )


# --- parsing ----------------------------------------------------------------------------------


def parse(body: bytes, content_type: str = "application/x-www-form-urlencoded", nonce: str = "n1"):
    return PlivoCallbackHandler([DLC_TOKEN]).parse(
        CallbackRequest(
            method="POST",
            url="https://svc.example.com/webhooks/plivo",
            headers={"X-Plivo-Signature-V3-Nonce": nonce},
            body=body,
            content_type=content_type,
        )
    )


def test_parse_form_fixture() -> None:
    from pathlib import Path

    body = (
        Path(__file__).parent.parent / "fixtures/plivo/callback_linking_success.form"
    ).read_bytes()
    event = parse(body)
    assert event.relevant
    assert event.number == "+12025551111"
    assert event.campaign_id == "CUOGHIN"
    assert event.provider_status == "number_linking:success"
    assert (event.signal, event.direction) == (Signal.LINKED, Direction.LINK)
    assert event.provider_time is None
    assert event.dedupe_key == hashlib.sha256(b"n1" + body).hexdigest()


def test_dedupe_key_differs_for_relink_deliveries() -> None:
    body = urlencode(DLC_PARAMS).encode()
    assert parse(body, nonce="a").dedupe_key != parse(body, nonce="b").dedupe_key


def test_parse_json_with_aliases_and_case() -> None:
    body = json.dumps(
        {
            "CampaignID": "CUOGHIN",
            "Phone_Number": "+12025551111",
            "Endpoint": "number_unlinking",
            "Status": "failed",
            "Failure_Reason": "carrier said no",
        }
    ).encode()
    event = parse(body, content_type="application/json; charset=utf-8")
    assert (event.signal, event.direction) == (Signal.FAILED, Direction.UNLINK)
    assert event.reason == "carrier said no"
    assert event.number == "+12025551111"


def test_parse_json_sniffed_without_content_type() -> None:
    event = parse(
        b'{"numbers": ["12025551111"], "status": "created", "type": "number_linking"}', ""
    )
    assert (event.signal, event.direction) == (Signal.PENDING, Direction.LINK)


def test_parse_missing_kind_gives_no_direction() -> None:
    assert (
        parse(b"number=12025551111&status=created").signal,
        parse(b"number=12025551111&status=created").direction,
    ) == (Signal.PENDING, None)
    assert parse(b"number=12025551111&status=failed").signal is Signal.FAILED
    # "success" means opposite things for a link and an unlink: never guessed.
    event = parse(b"number=12025551111&status=success")
    assert event.signal is None and event.relevant


def test_parse_unknown_status_is_none() -> None:
    event = parse(b"number=12025551111&status=exploded&event=number_linking")
    assert event.signal is None and event.provider_status == "number_linking:exploded"


def test_parse_other_kind_is_irrelevant() -> None:
    event = parse(b"event=brand_registration&status=registered")
    assert not event.relevant and event.ignore_reason


@pytest.mark.parametrize(
    "body",
    [
        b"status=success&event=number_linking",  # no number
        b"number=12025551111&event=number_linking",  # no status
        b"number=garbage&status=success",
        b"number=12025551111,12025552222&status=success",
        b"number=1&number=2&status=success",
        b"\xff\xfe",
        b'{"number": {"x": 1}, "status": "success"}',
        b'{"number": "12025551111", "status": true}',
        b"[1, 2]",
        b"{not json",
    ],
)
def test_parse_errors(body) -> None:
    with pytest.raises(CallbackParseError):
        parse(body)
