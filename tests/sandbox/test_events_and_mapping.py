"""The sandbox as an event receiver (verifies Standard Webhooks signatures, can refuse) and
its Telnyx per-carrier mapping statuses."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from sandbox import SandboxHandle
from tests.sandbox.conftest import Api, wait_for

SECRET = "whsec_" + base64.b64encode(b"e" * 32).decode()


def _signed(body: bytes, msg_id: str = "evt_1", secret: str = SECRET) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body.decode()),
        "content-type": "application/json",
    }


def test_receiver_verifies_signatures_and_can_refuse(api: Api) -> None:
    body = json.dumps({"type": "link.state_changed", "data": {"event_id": 1}}).encode()
    assert api.control("POST", "events", content=body, headers=_signed(body)).status_code == 401
    api.control("POST", "config", json={"event_secret": SECRET})
    assert api.control("POST", "events", content=body, headers=_signed(body)).status_code == 200
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    bad = api.control("POST", "events", content=body, headers=_signed(body, secret=other))
    assert bad.status_code == 401
    api.control("POST", "config", json={"event_refuse_ratio": 1.0})
    assert api.control("POST", "events", content=body, headers=_signed(body)).status_code == 503
    log = api.control("GET", "events").json()
    assert log["counts"] == {"accepted": 1, "refused": 1, "bad_signature": 2}
    assert [e["webhook_id"] for e in log["events"]] == ["evt_1"]
    assert log["events"][0]["event"]["data"]["event_id"] == 1


def test_assigned_numbers_carry_mapping_and_one_carrier_can_fail(
    api: Api, sandbox: SandboxHandle
) -> None:
    ok, bad = "+13125550101", "+13125550102"
    api.control("POST", "config", json={"telnyx_mapping_failures": {bad: "tmobile"}})
    for n in (ok, bad):
        assert api.telnyx_assign(n).status_code == 200
    pending = api.telnyx_get(ok).json()
    assert pending["tmobileNumberMappingStatus"] == "PENDING"

    def assigned(n: str) -> dict | None:
        rec = api.telnyx_get(n).json()
        return rec if rec["assignmentStatus"] == "ASSIGNED" else None

    rec_ok, rec_bad = wait_for(lambda: assigned(ok)), wait_for(lambda: assigned(bad))
    fields = (
        "tmobileNumberMappingStatus",
        "nonTmobileNumberMappingStatus",
        "attNumberMappingStatus",
    )
    assert [rec_ok[f] for f in fields] == ["ADDED", "ADDED", "ADDED"]
    assert [rec_bad[f] for f in fields] == ["FAILED", "ADDED", "ADDED"]
    bad_config = api.control("POST", "config", json={"telnyx_mapping_failures": {"*": "sprint"}})
    assert bad_config.status_code == 400
