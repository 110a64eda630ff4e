"""The sandbox's signer against REFERENCE.md test vectors and the official SDKs."""

from __future__ import annotations

import json
import time

import pytest
from plivo.utils import validate_signature
from plivo.utils.signature_v3 import validate_v3_signature
from telnyx.lib.webhook_verification import WebhookVerificationError, verify_webhook_signature

from sandbox.signing import (
    TelnyxSigner,
    plivo_headers,
    plivo_v2_signature,
    plivo_v3_signature,
)

CALL = {
    "CallUUID": "4vbcpem8-0u46-x1ha-9af1-438vc92bf374",
    "Digits": "1234",
    "From": "+15551111111",
    "To": "+15555555555",
}
NONCE = "kjsdhfsd87sd7yisud2"
TENDLC = {
    "campaign_id": "CUOGHIN",
    "number": "12025551111",
    "status": "success",
    "event": "number_linking",
}
HOOK = "https://hooks.example.com/webhooks/plivo/10dlc?tenant=acme"


@pytest.mark.parametrize(
    ("token", "method", "url", "params", "nonce", "expected"),
    [
        (
            "MY_AUTH_TOKEN",
            "POST",
            "https://example.com/abcd?foo=bar",
            CALL,
            NONCE,
            "Ug6FvQ3HEouDQkU6MBoCeTZ6ZgtrKFrogoEfmqhZ+No=",
        ),
        (
            "plivo_test_auth_token",
            "POST",
            "https://example.com/abcd?foo=bar",
            CALL,
            NONCE,
            "Rd0E/xpBKM9WgLTg4CX7mKwJlvGex3GvJivzq1ESO6c=",
        ),
        (
            "MY_AUTH_TOKEN",
            "POST",
            "https://example.com/abcd",
            {"To": "+15555555555", "From": "+15551111111"},
            NONCE,
            "9m5ASY9CQubrHMzy/yhkRhJEyKQW2d1wZTevE90Iz14=",
        ),
        (
            "MY_AUTH_TOKEN",
            "POST",
            "https://example.com/abcd",
            {},
            NONCE,
            "Kx7Z14PWEmmkgBP9t+pw62awdxyddHUzKOesUeswGM0=",
        ),
        (
            "MY_AUTH_TOKEN",
            "GET",
            "https://example.com/abcd",
            {},
            NONCE,
            "Kx7Z14PWEmmkgBP9t+pw62awdxyddHUzKOesUeswGM0=",
        ),
        (
            "MY_AUTH_TOKEN",
            "GET",
            "https://example.com/abcd?foo=bar",
            {"b": "2", "a": "1"},
            NONCE,
            "TCVtIFtK596rigUJbk2bbz9LLumQECEyLXH0lUlYZGM=",
        ),
        (
            "TESTAUTHTOKEN1234567890",
            "POST",
            HOOK,
            TENDLC,
            "05429567804466091622",
            "qWT6FJdmuPbQ7UBWILGZDfXyELHyTL70ao/yd789Xyo=",
        ),
        (
            "TESTAUTHTOKEN1234567890",
            "GET",
            HOOK + "&campaign_id=CUOGHIN&event=number_linking&number=12025551111&status=success",
            {},
            "05429567804466091622",
            "ePzaitS8KfWEoNSQ23rvV30qKmhsG8X+Va0XDNabeIg=",
        ),
    ],
)
def test_plivo_v3_vectors(
    token: str, method: str, url: str, params: dict[str, str], nonce: str, expected: str
) -> None:
    assert plivo_v3_signature(method, url, params, nonce, token) == expected


def test_plivo_v2_vector() -> None:
    got = plivo_v2_signature(HOOK, "05429567804466091622", "TESTAUTHTOKEN1234567890")
    assert got == "UMZpS/btRIWpHNMF5+PFTzwdSC/mCv/bf1d+Td+bEE0="


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/webhooks/plivo", "https://x.example/cb?a=1&b=two%20words"]
)
def test_plivo_headers_verify_with_official_sdk(method: str, url: str) -> None:
    token = "sandbox-token"
    params = {**TENDLC, "reason": "Rejected by T-Mobile: bad & odd=chars"}
    headers = plivo_headers(method, url, params if method == "POST" else {}, token)
    v3_params = params if method == "POST" else {}
    for name in ("X-Plivo-Signature-V3", "X-Plivo-Signature-Ma-V3"):
        assert validate_v3_signature(
            method, url, headers["X-Plivo-Signature-V3-Nonce"], token, headers[name], v3_params
        )
    for name in ("X-Plivo-Signature-V2", "X-Plivo-Signature-Ma-V2"):
        assert validate_signature(url, headers["X-Plivo-Signature-V2-Nonce"], headers[name], token)
    bad = plivo_headers(method, url, v3_params, token, bad=True)
    assert not validate_v3_signature(
        method,
        url,
        bad["X-Plivo-Signature-V3-Nonce"],
        token,
        bad["X-Plivo-Signature-V3"],
        v3_params,
    )
    assert not validate_signature(
        url, bad["X-Plivo-Signature-V2-Nonce"], bad["X-Plivo-Signature-V2"], token
    )


TELNYX_SEED = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
TELNYX_BODY = (
    '{"data":{"event_type":"10dlc.phone_number.update","id":"123abc67-7a9d-4ebf-86b9-'
    '3df81e862d49","occurred_at":"2024-08-07T17:22:37.328+00:00","payload":{"campaignId":'
    '"751c6a5c-907b-43a9-8ada-ba1dc8335b07","phoneNumber":"+16715455939","status":"success",'
    '"type":"ASSIGNMENT","reasons":[]},"record_type":"event"},"meta":{"attempt":1,'
    '"delivered_to":"https://example.com/webhooks/telnyx"}}'
)


def test_telnyx_vector() -> None:
    signer = TelnyxSigner.from_hex(TELNYX_SEED)
    assert signer.public_key_b64 == "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
    assert signer.sign("1723051357", TELNYX_BODY) == (
        "n3VsegJ4JpnHgX621STKnpn++8gB6ayy10DnOSuwF0omGzq1uT0QA08HRe0kBz2FpNrvI1VYwuV2/xyu59caBQ=="
    )


def test_telnyx_headers_verify_with_official_sdk() -> None:
    signer = TelnyxSigner.from_hex(TELNYX_SEED)
    body = json.dumps({"data": {"id": "x", "payload": {"a": "é"}}}).encode()
    headers = signer.headers(body)
    verify_webhook_signature(body, headers, signer.public_key_b64)
    with pytest.raises(WebhookVerificationError):
        verify_webhook_signature(body, signer.headers(body, bad=True), signer.public_key_b64)
    with pytest.raises(WebhookVerificationError):  # stale timestamp
        old = signer.headers(body, timestamp=int(time.time()) - 1000)
        verify_webhook_signature(body, old, signer.public_key_b64)
