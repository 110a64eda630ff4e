"""Signed callbacks to a local receiver, verified with the official SDKs."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from plivo.utils import validate_signature
from plivo.utils.signature_v3 import validate_v3_signature
from telnyx.lib.webhook_verification import WebhookVerificationError, verify_webhook_signature

from sandbox import SandboxHandle
from tests.sandbox.conftest import CAMPAIGN, TELNYX_CAMPAIGN, Api, Received, Receiver, wait_for


def plivo_valid(req: Received, token: str, url: str) -> bool:
    h = {k.lower(): v for k, v in req.headers.items()}
    if req.method == "POST":
        v3 = validate_v3_signature(
            "POST",
            url,
            h["x-plivo-signature-v3-nonce"],
            token,
            h["x-plivo-signature-v3"],
            dict(req.form),
        )
    else:
        v3 = validate_v3_signature(
            "GET", req.url, h["x-plivo-signature-v3-nonce"], token, h["x-plivo-signature-v3"], {}
        )
    ma = validate_v3_signature(
        req.method,
        url if req.method == "POST" else req.url,
        h["x-plivo-signature-v3-nonce"],
        token,
        h["x-plivo-signature-ma-v3"],
        dict(req.form) if req.method == "POST" else {},
    )
    v2 = validate_signature(
        req.url, h["x-plivo-signature-v2-nonce"], h["x-plivo-signature-v2"], token
    )
    v2ma = validate_signature(
        req.url, h["x-plivo-signature-v2-nonce"], h["x-plivo-signature-ma-v2"], token
    )
    return v3 and ma and v2 and v2ma


def test_plivo_post_callbacks_signed(api: Api, sandbox: SandboxHandle, receiver: Receiver) -> None:
    url = receiver.url + "/webhooks/plivo?tenant=acme"
    api.plivo_link(["12025551111"], url=url, method="POST")
    sandbox.settle()
    reqs = receiver.wait(2)
    assert [r.form["status"] for r in reqs] == ["created", "success"]
    for r in reqs:
        assert r.method == "POST"
        assert r.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert r.form["campaign_id"] == CAMPAIGN
        assert r.form["number"] == "12025551111"
        assert r.form["event"] == "number_linking"
        assert plivo_valid(r, sandbox.config.plivo_auth_token, url)
    api.plivo_unlink("12025551111", url=url, method="POST")
    sandbox.settle()
    reqs = receiver.wait(4)
    assert [(r.form["event"], r.form["status"]) for r in reqs[2:]] == [
        ("number_unlinking", "created"),
        ("number_unlinking", "success"),
    ]


def test_plivo_get_callbacks_and_failure_reason(
    api: Api, sandbox: SandboxHandle, receiver: Receiver
) -> None:
    sandbox.configure(link_failure_ratio=1.0, plivo_created_callbacks=False)
    url = receiver.url + "/cb"
    api.plivo_link(["12025551111"], url=url, method="GET")
    sandbox.settle()
    (req,) = receiver.wait(1)
    assert req.method == "GET"
    assert req.args["status"] == "failed" and req.args["reason"]
    assert plivo_valid(req, sandbox.config.plivo_auth_token, url)


def test_telnyx_callbacks_signed(api: Api, sandbox: SandboxHandle, receiver: Receiver) -> None:
    sandbox.configure(telnyx_webhook_url=receiver.url + "/webhooks/telnyx")
    api.telnyx_assign("+15551234567")
    sandbox.settle()
    api.telnyx("DELETE", "/phone_number_campaigns/+15551234567")
    sandbox.settle()
    reqs = receiver.wait(2)
    key = api.control("GET", "keys").json()["telnyx_public_key"]
    assert key == sandbox.telnyx_public_key
    payloads = []
    for r in reqs:
        verify_webhook_signature(r.body, r.headers, key)
        event = json.loads(r.body)
        data = event["data"]
        assert data["event_type"] == "10dlc.phone_number.update"
        assert data["occurred_at"].endswith("+00:00")
        datetime.fromisoformat(data["occurred_at"])
        assert event["meta"] == {"attempt": 1, "delivered_to": receiver.url + "/webhooks/telnyx"}
        payloads.append(data["payload"])
    assert payloads == [
        {
            "campaignId": TELNYX_CAMPAIGN,
            "phoneNumber": "+15551234567",
            "status": "success",
            "type": t,
            "reasons": [],
        }
        for t in ("ASSIGNMENT", "DELETION")
    ]


def test_telnyx_per_campaign_url_status_updates_and_failures(
    api: Api, sandbox: SandboxHandle, receiver: Receiver
) -> None:
    sandbox.configure(
        telnyx_campaign_webhooks={"c2": receiver.url + "/c2"},
        telnyx_status_updates=True,
        link_failure_ratio=1.0,
    )
    api.telnyx_assign("+15551234567", campaign="c2")
    api.telnyx_assign("+15551234568", campaign="nowhere")  # no URL: skipped
    sandbox.settle()
    reqs = receiver.wait(3)
    kinds = [
        (
            json.loads(r.body)["data"]["payload"]["type"],
            json.loads(r.body)["data"]["payload"]["status"],
        )
        for r in reqs
    ]
    assert sorted(kinds) == sorted(
        [("STATUS_UPDATE", "PENDING"), ("ASSIGNMENT", "failed"), ("STATUS_UPDATE", "FAILED")]
    )
    failed = next(json.loads(r.body) for r in reqs if b"ASSIGNMENT" in r.body)
    assert failed["data"]["payload"]["reasons"] == [sandbox.config.link_failure_reason]
    assert sandbox.counters()["callbacks"]["skipped_no_url"] == 3


def test_retry_on_non_2xx_then_resend(api: Api, sandbox: SandboxHandle, receiver: Receiver) -> None:
    sandbox.configure(telnyx_webhook_url=receiver.url + "/t", telnyx_callback_retries=2)
    receiver.statuses = [500, 503, 500]
    api.telnyx_assign("+15551234567")
    sandbox.settle()
    reqs = receiver.wait(3)
    assert sandbox.wait_callbacks()
    assert [json.loads(r.body)["meta"]["attempt"] for r in reqs] == [1, 2, 3]
    assert len({json.loads(r.body)["data"]["id"] for r in reqs}) == 1
    c = sandbox.counters()["callbacks"]
    assert (c["sent"], c["failed"], c["retried"], c["delivered"]) == (3, 3, 2, 0)
    log = api.control("GET", "callbacks").json()["callbacks"]
    assert [a["status_code"] for a in log[0]["attempts"]] == [500, 503, 500]
    before = datetime.now(UTC).isoformat()
    r = api.control("POST", "resend", json={"since": "2000-01-01T00:00:00Z"})
    assert r.json() == {"resent": 1}
    reqs = receiver.wait(4)
    assert reqs[3].status == 200
    verify_webhook_signature(reqs[3].body, reqs[3].headers, sandbox.telnyx_public_key)
    assert api.control("POST", "resend", json={"since": before}).json() == {"resent": 0}


def test_plivo_retries_on_non_200(api: Api, sandbox: SandboxHandle, receiver: Receiver) -> None:
    sandbox.configure(plivo_created_callbacks=False)
    receiver.statuses = [204]  # Plivo wants exactly 200
    api.plivo_link(["12025551111"], url=receiver.url + "/p")
    sandbox.settle()
    reqs = receiver.wait(2)
    assert [r.status for r in reqs] == [204, 200]


def test_drop_duplicate_bad_signature(api: Api, sandbox: SandboxHandle, receiver: Receiver) -> None:
    url = receiver.url + "/t"
    sandbox.configure(telnyx_webhook_url=url, callback_drop_ratio=1.0)
    api.telnyx_assign("+15551234567")
    sandbox.settle()
    assert sandbox.wait_callbacks()
    assert receiver.requests == []
    assert sandbox.counters()["callbacks"]["dropped"] == 1
    # a resend delivers even what was dropped
    assert api.control("POST", "resend", json={}).json() == {"resent": 1}
    receiver.wait(1)
    sandbox.configure(callback_drop_ratio=0.0, callback_duplicate_ratio=1.0)
    api.telnyx("DELETE", "/phone_number_campaigns/+15551234567")
    sandbox.settle()
    assert sandbox.wait_callbacks()
    dupes = receiver.requests[1:]
    assert 2 <= len(dupes) <= 3
    assert len({json.loads(r.body)["data"]["id"] for r in dupes}) == 1
    sandbox.configure(
        callback_duplicate_ratio=0.0, callback_bad_signature_ratio=1.0, telnyx_callback_retries=0
    )
    api.telnyx_assign("+15557654321")
    sandbox.settle()
    assert sandbox.wait_callbacks()
    last = receiver.requests[-1]
    with pytest.raises(WebhookVerificationError):
        verify_webhook_signature(last.body, last.headers, sandbox.telnyx_public_key)
    assert sandbox.counters()["callbacks"]["bad_signature"] == 1


def test_reorder_and_delay(api: Api, sandbox: SandboxHandle, receiver: Receiver) -> None:
    sandbox.configure(
        telnyx_webhook_url=receiver.url + "/t",
        callback_reorder_window=10,
        callback_reorder_hold=0.2,
        seed=3,
    )
    numbers = [f"+1555123{i:04d}" for i in range(10)]
    for n in numbers:
        api.telnyx_assign(n)
    sandbox.settle()
    reqs = receiver.wait(10)
    got = [json.loads(r.body)["data"]["payload"]["phoneNumber"] for r in reqs]
    assert sorted(got) == numbers
    assert got != numbers  # shuffled (seeded; 1 in 10! chance to be in order otherwise)
    sandbox.configure(callback_reorder_window=0, callback_delay=0.3)
    api.telnyx("DELETE", "/phone_number_campaigns/+15551230000")
    sandbox.settle()
    receiver.wait(11, timeout=3)


def test_callbacks_log_and_wait(api: Api, sandbox: SandboxHandle, receiver: Receiver) -> None:
    api.plivo_link(["12025551111"], url=receiver.url + "/p")
    r = api.control("POST", "settle", json={"wait_callbacks": True, "timeout": 5})
    assert r.json()["settled"] == 1 and r.json()["callbacks_idle"] is True
    log = api.control("GET", "callbacks", params={"provider": "plivo"}).json()["callbacks"]
    assert [c["body"]["status"] for c in log] == ["created", "success"]
    assert all(c["attempts"][0]["status_code"] == 200 for c in log)
    wait_for(lambda: len(receiver.requests) == 2)
