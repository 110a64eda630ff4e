"""The /_sandbox/ control API, drift, and the CLI command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx

from sandbox import SandboxHandle
from tests.sandbox.conftest import CAMPAIGN, Api, Receiver


def test_config_partial_update_and_validation(api: Api) -> None:
    cfg = api.control("GET", "config").json()
    assert cfg["plivo_auth_id"] == "MASANDBOX0000000000A"
    assert cfg["telnyx_public_key"]
    r = api.control("POST", "config", json={"delay": 5, "callback_drop_ratio": 0.5})
    assert r.status_code == 200
    assert (r.json()["delay"], r.json()["callback_drop_ratio"]) == (5.0, 0.5)
    assert r.json()["seed"] == cfg["seed"]
    for bad in (
        {"nope": 1},
        {"hang_ratio": 2},
        {"port": 1},
        {"delay": "x"},
        {"telnyx_seed": "abc"},
        {"plivo_auth_id": "XX"},
    ):
        r = api.control("POST", "config", json=bad)
        assert r.status_code == 400, bad
        assert "error" in r.json()
    assert api.control("POST", "config", content=b"{").status_code == 400


def test_new_telnyx_seed_changes_key(api: Api) -> None:
    before = api.control("GET", "keys").json()["telnyx_public_key"]
    api.control(
        "POST",
        "config",
        json={"telnyx_seed": "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"},
    )
    after = api.control("GET", "keys").json()["telnyx_public_key"]
    assert after == "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=" != before


def test_numbers_settle_reset(api: Api) -> None:
    api.plivo_link(["12025551111"])
    api.telnyx_assign("+15551234567")
    numbers = api.control("GET", "numbers").json()["numbers"]
    assert {(n["provider"], n["number"], n["status"]) for n in numbers} == {
        ("plivo", "+12025551111", "pending_link"),
        ("telnyx", "+15551234567", "pending_link"),
    }
    assert api.control("POST", "settle").json()["settled"] == 2
    plivo = api.control("GET", "numbers", params={"provider": "plivo"}).json()["numbers"]
    assert [(n["campaign_id"], n["provider_status"]) for n in plivo] == [(CAMPAIGN, "COMPLETED")]
    assert api.control("GET", "numbers", params={"provider": "x"}).status_code == 400
    assert api.control("GET", "counters").json()["requests"]["plivo"]
    assert api.control("POST", "reset").json() == {"reset": True}
    assert api.control("GET", "numbers").json()["numbers"] == []
    assert api.control("GET", "counters").json()["requests"] == {}


def test_drift(api: Api, sandbox: SandboxHandle, receiver: Receiver) -> None:
    sandbox.configure(telnyx_webhook_url=receiver.url + "/t")
    api.plivo_link(["12025551111"])
    api.telnyx_assign("+15551234567")
    sandbox.settle()
    assert sandbox.wait_callbacks()
    sent = len(receiver.requests)
    r = api.control(
        "POST", "drift", json={"provider": "plivo", "number": "12025551111", "action": "unlink"}
    )
    assert r.status_code == 200
    assert api.plivo_get("12025551111").status_code == 404
    r = api.control(
        "POST",
        "drift",
        json={
            "provider": "telnyx",
            "number": "+15551234567",
            "action": "move",
            "campaign_id": "stolen",
        },
    )
    assert r.json()["record"]["campaign_id"] == "stolen"
    got = api.telnyx_get("+15551234567").json()
    assert (got["campaignId"], got["assignmentStatus"]) == ("stolen", "ASSIGNED")
    assert sandbox.wait_callbacks()
    assert len(receiver.requests) == sent  # no callback by default
    r = api.control(
        "POST",
        "drift",
        json={"provider": "telnyx", "number": "+15551234567", "action": "unlink", "callback": True},
    )
    assert r.status_code == 200
    receiver.wait(sent + 1)
    bad = api.control(
        "POST", "drift", json={"provider": "plivo", "number": "12025559999", "action": "unlink"}
    )
    assert bad.status_code == 404
    assert (
        api.control(
            "POST", "drift", json={"provider": "plivo", "number": "1", "action": "unlink"}
        ).status_code
        == 400
    )


def test_env_and_health(api: Api, sandbox: SandboxHandle) -> None:
    env = api.control("GET", "env").json()
    assert env["PLIVO_API_URL"] == sandbox.url == env["TELNYX_API_URL"]
    assert env == sandbox.env()
    assert api.control("GET", "health").json()["ok"] is True
    assert api.http.get("/_sandbox/nope").status_code == 404


def test_cli_runs_and_stops_on_sigterm() -> None:
    code = "from sandbox.cli import sandbox; sandbox()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--port", "0", "--delay", "0.1", "--seed", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "TELNYX_PUBLIC_KEY" in line:
                break
        text = "".join(lines)
        url = text.split("listening on ", 1)[1].split()[0]
        for var in (
            "PLIVO_API_URL",
            "TELNYX_API_URL",
            "PLIVO_AUTH_ID",
            "PLIVO_AUTH_TOKEN",
            "TELNYX_API_KEY",
            "TELNYX_PUBLIC_KEY",
        ):
            assert f"export {var}=" in text
        r = httpx.get(url + "/_sandbox/config", trust_env=False)
        assert r.json()["delay"] == 0.1 and r.json()["seed"] == 4
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
