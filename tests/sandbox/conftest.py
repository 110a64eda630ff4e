"""Fixtures for the sandbox tests: a sandbox on a free port and a local callback receiver."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from sandbox import SandboxConfig, SandboxHandle, start_sandbox

CAMPAIGN = "CUOGHIN"
TELNYX_CAMPAIGN = "4b300178-131c-d902-d54e-72d90ba1620a"


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


@dataclass
class Received:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    form: dict[str, str]
    args: dict[str, str]
    status: int


@dataclass
class Receiver:
    """A tiny HTTP server that records every request. ``statuses`` are answered in order
    (then ``default_status``)."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    default_status: int = 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        req = Request(environ)
        body = req.get_data()
        with self.lock:
            status = self.statuses.pop(0) if self.statuses else self.default_status
            self.requests.append(
                Received(
                    req.method,
                    req.url,
                    dict(req.headers),
                    body,
                    dict(req.form) if req.method == "POST" else {},
                    dict(req.args),
                    status,
                )
            )
        return Response("ok", status=status)(environ, start_response)

    def wait(self, n: int, timeout: float = 5.0) -> list[Received]:
        wait_for(lambda: len(self.requests) >= n, timeout)
        with self.lock:
            return list(self.requests)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    server = make_server("127.0.0.1", 0, rec.app, threaded=True, request_handler=_Quiet)
    rec.url = f"http://127.0.0.1:{server.port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


def make_config(**overrides: Any) -> SandboxConfig:
    base = SandboxConfig(
        port=0,
        delay=0.2,
        plivo_rate_limit=0,
        telnyx_rate_limit=0,
        callback_retry_intervals=[0.05],
    )
    return base.updated(overrides, runtime=False)


@pytest.fixture
def sandbox() -> Iterator[SandboxHandle]:
    handle = start_sandbox(make_config())
    yield handle
    handle.stop()


class Api:
    """Small helpers over httpx for both providers."""

    def __init__(self, handle: SandboxHandle) -> None:
        self.h = handle
        self.http = httpx.Client(base_url=handle.url, trust_env=False, timeout=10.0)

    @property
    def auth_id(self) -> str:
        return self.h.config.plivo_auth_id

    def plivo(self, method: str, path: str, **kw: Any) -> httpx.Response:
        kw.setdefault("auth", (self.h.config.plivo_auth_id, self.h.config.plivo_auth_token))
        return self.http.request(method, f"/v1/Account/{self.auth_id}{path}", **kw)

    def plivo_link(self, numbers: list[str], campaign: str = CAMPAIGN, **kw: Any) -> httpx.Response:
        body = {"numbers": numbers, **kw}
        return self.plivo("POST", f"/10dlc/Campaign/{campaign}/Number/", json=body)

    def plivo_get(self, number: str, campaign: str = CAMPAIGN) -> httpx.Response:
        return self.plivo("GET", f"/10dlc/Campaign/{campaign}/Number/{number}/")

    def plivo_unlink(self, number: str, campaign: str = CAMPAIGN, **kw: Any) -> httpx.Response:
        return self.plivo("DELETE", f"/10dlc/Campaign/{campaign}/Number/{number}/", json=kw)

    def telnyx(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = kw.pop("headers", {})
        headers.setdefault("Authorization", f"Bearer {self.h.config.telnyx_api_key}")
        return self.http.request(method, f"/v2/10dlc{path}", headers=headers, **kw)

    def telnyx_assign(self, number: str, campaign: str = TELNYX_CAMPAIGN) -> httpx.Response:
        return self.telnyx(
            "POST",
            "/phone_number_campaigns",
            json={"phoneNumber": number, "campaignId": campaign},
        )

    def telnyx_get(self, number: str) -> httpx.Response:
        return self.telnyx("GET", f"/phone_number_campaigns/{number}")

    def control(self, method: str, name: str, **kw: Any) -> httpx.Response:
        return self.http.request(method, f"/_sandbox/{name}", **kw)


@pytest.fixture
def api(sandbox: SandboxHandle) -> Iterator[Api]:
    client = Api(sandbox)
    yield client
    client.http.close()
