"""``dlcsync sandbox``: a stateful fake Plivo + Telnyx carrier over real HTTP (DESIGN §8)."""

from sandbox.config import SandboxConfig
from sandbox.server import SandboxHandle, start_sandbox

__all__ = ["SandboxConfig", "SandboxHandle", "start_sandbox"]
