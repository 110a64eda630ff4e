"""``dlcsync sandbox``: a stateful fake Plivo + Telnyx carrier over real HTTP (DESIGN §8).

The server (Flask, the OpenAPI validator) is imported on first use, not with the package:
every ``dlcsync`` command registers the ``sandbox`` command, and must not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox.config import SandboxConfig

if TYPE_CHECKING:
    from sandbox.server import SandboxHandle, start_sandbox

__all__ = ["SandboxConfig", "SandboxHandle", "start_sandbox"]


def __getattr__(name: str) -> Any:
    if name in ("SandboxHandle", "start_sandbox"):
        from sandbox import server

        return getattr(server, name)
    raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
