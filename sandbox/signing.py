"""An independent signer for sandbox callbacks (does not import ``providers``).

Plivo V3 and V2 follow REFERENCE.md §3 (the official SDK's algorithm); Telnyx follows §5.3
(Ed25519 over ``"{timestamp}|{raw body}"``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit, urlunsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ParamValue = str | list[str]


def _b64_hmac(token: str, message: str) -> str:
    digest = hmac.new(token.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _base(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), parts.query


def _sorted_query(params: Mapping[str, ParamValue]) -> str:
    out: list[str] = []
    for key in sorted(params):
        value = params[key]
        if isinstance(value, list):
            out.append("&".join(f"{key}={v}" for v in sorted(value)))
        else:
            out.append(f"{key}={value}")
    return "&".join(out)


def _sorted_params(params: Mapping[str, ParamValue]) -> str:
    out: list[str] = []
    for key in sorted(params):
        value = params[key]
        if isinstance(value, list):
            out.append("".join(f"{key}{v}" for v in sorted(value)))
        else:
            out.append(f"{key}{value}")
    return "".join(out)


def plivo_v3_string(method: str, uri: str, params: Mapping[str, ParamValue] | None) -> str:
    """The URL part of the V3 string to sign (before ``"." + nonce``)."""
    params = dict(params or {})
    base, query = _base(uri)
    query_map: dict[str, ParamValue] = dict(parse_qs(query, keep_blank_values=True))
    if method.upper() == "GET" or not params:
        merged = {**params, **query_map} if method.upper() == "GET" else query_map
        qs = _sorted_query(merged)
        return f"{base}?{qs}" if qs else base
    qs = _sorted_query(query_map)
    url = f"{base}?{qs}"
    if qs:
        url += "."
    return url + _sorted_params(params)


def plivo_v3_signature(
    method: str, uri: str, params: Mapping[str, ParamValue] | None, nonce: str, token: str
) -> str:
    return _b64_hmac(token, f"{plivo_v3_string(method, uri, params)}.{nonce}")


def plivo_v2_signature(uri: str, nonce: str, token: str) -> str:
    base, _ = _base(uri)
    return _b64_hmac(token, base + nonce)


def new_nonce() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(20))


def plivo_headers(
    method: str,
    uri: str,
    params: Mapping[str, ParamValue] | None,
    token: str,
    *,
    main_token: str | None = None,
    bad: bool = False,
) -> dict[str, str]:
    """All six Plivo signature headers for a callback to ``uri`` (the exact URL requested).

    ``bad`` signs with a wrong token, so every signature fails to verify.
    """
    if bad:
        token = main_token = token + "-wrong"
    main = main_token if main_token is not None else token
    v3_nonce, v2_nonce = new_nonce(), new_nonce()
    return {
        "X-Plivo-Signature-V3": plivo_v3_signature(method, uri, params, v3_nonce, token),
        "X-Plivo-Signature-Ma-V3": plivo_v3_signature(method, uri, params, v3_nonce, main),
        "X-Plivo-Signature-V3-Nonce": v3_nonce,
        "X-Plivo-Signature-V2": plivo_v2_signature(uri, v2_nonce, token),
        "X-Plivo-Signature-Ma-V2": plivo_v2_signature(uri, v2_nonce, main),
        "X-Plivo-Signature-V2-Nonce": v2_nonce,
    }


class TelnyxSigner:
    """Ed25519 signer built from a 32-byte seed."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("Ed25519 seed must be 32 bytes")
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        raw = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_key_b64 = base64.b64encode(raw).decode("ascii")

    @classmethod
    def from_hex(cls, seed_hex: str) -> TelnyxSigner:
        return cls(bytes.fromhex(seed_hex))

    def sign(self, timestamp: str, body: bytes | str) -> str:
        if isinstance(body, str):
            body = body.encode("utf-8")
        signature = self._key.sign(timestamp.encode("ascii") + b"|" + body)
        return base64.b64encode(signature).decode("ascii")

    def headers(
        self, body: bytes, *, timestamp: int | None = None, bad: bool = False
    ) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = self.sign(ts, body)
        if bad:
            raw = bytearray(base64.b64decode(signature))
            raw[0] ^= 0xFF
            signature = base64.b64encode(bytes(raw)).decode("ascii")
        return {
            "Content-Type": "application/json",
            "telnyx-timestamp": ts,
            "telnyx-signature-ed25519": signature,
        }
