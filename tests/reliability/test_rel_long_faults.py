"""Long mode: the carrier misbehaves for the whole run: 20 % 5xx, 5 % hangs (the connection
dropped after 2 s), 5 % 429 with Retry-After, 1 % unknown statuses, 1 % malformed JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.reliability.modes import MARKS

pytestmark = MARKS

FAULTS = {
    "error_5xx_ratio": 0.2,
    "hang_ratio": 0.05,
    "hang_seconds": 2.0,
    "hang_mode": "close",
    "rate_429_ratio": 0.05,
    "retry_after": 1,
    "unknown_status_ratio": 0.01,
    "malformed_json_ratio": 0.01,
}


def test_storm_with_sandbox_faults(scenario: Callable[..., dict[str, Any]]) -> None:
    # Retries back off from the poll interval: a short one keeps the run short.
    report = scenario("sandbox_faults", sandbox_faults=FAULTS, quiet_timeout=300, poll_interval=5.0)
    assert report["problems"] == []
    faults = report["sandbox_faults"]
    for name in ("injected_5xx", "hang", "injected_429", "unknown_status", "malformed_json"):
        assert faults.get(name, 0) > 0, (name, faults)
