"""Running the sandbox: ``start_sandbox(config) -> SandboxHandle`` (background thread)."""

from __future__ import annotations

import threading
from typing import Any

import httpx
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from sandbox.app import Sandbox
from sandbox.config import SandboxConfig


class _QuietHandler(WSGIRequestHandler):
    """No access log line per request (it would cost more than the request)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class SandboxHandle:
    """A running sandbox. ``url`` is the base URL for both providers and the control API."""

    def __init__(self, sandbox: Sandbox, server: BaseWSGIServer) -> None:
        self.sandbox = sandbox
        self._server = server
        self.host = server.host
        self.port = server.port
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            daemon=True,
            name="sandbox-http",
        )
        self._stopped = False

    def _start(self) -> None:
        self._thread.start()

    # -- conveniences for tests (the same as the control API, without HTTP) --
    @property
    def carrier(self) -> Any:
        return self.sandbox.carrier

    @property
    def config(self) -> SandboxConfig:
        return self.sandbox.config()

    @property
    def telnyx_public_key(self) -> str:
        return self.sandbox.telnyx_public_key

    def env(self) -> dict[str, str]:
        """The environment variables that point dlcsync at this sandbox."""
        return self.sandbox.env(self.url)

    def configure(self, **changes: Any) -> SandboxConfig:
        return self.sandbox.update_config(changes)

    def settle(self, wait_callbacks: bool = False, timeout: float = 10.0) -> int:
        n = self.sandbox.carrier.settle()
        if wait_callbacks:
            self.sandbox.dispatcher.wait_idle(timeout)
        return n

    def wait_callbacks(self, timeout: float = 10.0) -> bool:
        return self.sandbox.dispatcher.wait_idle(timeout)

    def numbers(self, provider: str | None = None) -> list[dict[str, Any]]:
        return self.sandbox.carrier.snapshot(provider)

    def counters(self) -> dict[str, Any]:
        return self.sandbox.counters()

    def callbacks(self, provider: str | None = None) -> list[dict[str, Any]]:
        return self.sandbox.dispatcher.log(provider)

    def reset(self, config: bool = False) -> None:
        self.sandbox.reset(config=config)

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client on the control API / provider APIs (no proxies from the env)."""
        return httpx.Client(base_url=self.url, trust_env=False, **kwargs)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.sandbox.stopping.set()  # wakes hung requests first
        self._server.shutdown()
        self._thread.join(timeout=5.0)
        self._server.server_close()
        self.sandbox.stop()

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def build_server(config: SandboxConfig) -> tuple[Sandbox, BaseWSGIServer]:
    sandbox = Sandbox(config)
    try:
        server = make_server(
            config.host,
            config.port,
            sandbox.wsgi,
            threaded=True,
            request_handler=_QuietHandler,
        )
    except BaseException:
        sandbox.stop()
        raise
    return sandbox, server


def start_sandbox(config: SandboxConfig | None = None, **overrides: Any) -> SandboxHandle:
    """Start a sandbox in background threads. ``port=0`` (the default here) picks a free port."""
    if config is None:
        config = SandboxConfig(port=0)
    if overrides:
        config = config.updated(overrides, runtime=False)
    sandbox, server = build_server(config)
    handle = SandboxHandle(sandbox, server)
    handle._start()
    return handle
