"""Whatever arrives at the webhook endpoints, the answer is never a 500."""

from __future__ import annotations

import base64
import time

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.settings import Settings
from webhooks.app import create_app

SEED = bytes(range(32))
PUBLIC = base64.b64encode(
    Ed25519PrivateKey.from_private_bytes(SEED).public_key().public_bytes_raw()
).decode()
ALLOWED = {200, 400, 401, 404, 405, 413}

header_names = st.sampled_from(
    [
        "content-type",
        "telnyx-timestamp",
        "telnyx-signature-ed25519",
        "x-plivo-signature-v3",
        "x-plivo-signature-v3-nonce",
        "x-plivo-signature-v2",
        "x-plivo-signature-v2-nonce",
        "x-plivo-signature-ma-v3",
        "content-length-ish",
    ]
)
header_values = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=120
) | st.sampled_from(
    [
        "",
        "application/json",
        "application/x-www-form-urlencoded",
        str(int(time.time())),
        "AAAA",
        "a,b,,c",
    ]
)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    from models.migrate import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'db.sqlite'}"
    upgrade(url)
    settings_ = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        plivo_auth_id="MAFUZZ00000000000000",
        plivo_auth_token="fuzz-token",
        telnyx_api_key="KEYFUZZ",
        telnyx_public_key=PUBLIC,
    )
    return create_app(settings_, enqueue=lambda *a: None, broker_ping=lambda: None)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    provider=st.sampled_from(["plivo", "telnyx", "other", "%00", "t" * 300]),
    method=st.sampled_from(["POST", "GET", "PUT"]),
    body=st.binary(max_size=2048) | st.text(max_size=500).map(str.encode),
    headers=st.dictionaries(header_names, header_values, max_size=6),
    query=st.text(max_size=40),
)
def test_arbitrary_requests_never_get_a_500(
    app: Flask, provider: str, method: str, body: bytes, headers: dict[str, str], query: str
) -> None:
    client = app.test_client()
    response = client.open(
        f"/webhooks/{provider}", method=method, data=body, headers=headers, query_string=query
    )
    assert response.status_code in ALLOWED, (response.status_code, response.data[:200])
    assert (response.is_json and "error" in response.json) or response.status_code == 200


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    payload=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=10), children, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_correctly_signed_nonsense_is_400_or_200(app: Flask, payload: object) -> None:
    import json

    body = json.dumps(payload).encode()
    ts = str(int(time.time()))
    sig = base64.b64encode(
        Ed25519PrivateKey.from_private_bytes(SEED).sign(f"{ts}|".encode() + body)
    )
    response = app.test_client().post(
        "/webhooks/telnyx",
        data=body,
        headers={
            "content-type": "application/json",
            "telnyx-timestamp": ts,
            "telnyx-signature-ed25519": sig.decode(),
        },
    )
    assert response.status_code in (200, 400), response.data[:200]


def test_database_failure_answers_503(app: Flask) -> None:
    body = b'{"data": {"event_type": "10dlc.campaign.update", "id": "e1", "payload": {}}}'
    ts = str(int(time.time()))
    sig = base64.b64encode(
        Ed25519PrivateKey.from_private_bytes(SEED).sign(f"{ts}|".encode() + body)
    )
    broken = create_app(
        app.extensions["dlcsync"].settings,
        engine=sa.create_engine(
            "postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1}
        ),
        enqueue=lambda *a: None,
        broker_ping=lambda: None,
    )
    response = broken.test_client().post(
        "/webhooks/telnyx",
        data=body,
        headers={
            "content-type": "application/json",
            "telnyx-timestamp": ts,
            "telnyx-signature-ed25519": sig.decode(),
        },
    )
    assert response.status_code == 503 and response.json["error"]["code"] == "unavailable"
