"""The storm while Redis (no persistence: every queue wiped) is SIGKILLed three times."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.reliability.chaos import Chaos, kill_redis
from tests.reliability.modes import MARKS

pytestmark = MARKS


def test_storm_with_redis_sigkilled_three_times(scenario: Callable[..., dict[str, Any]]) -> None:
    report = scenario(
        "redis_sigkill",
        chaos=lambda st, rs: [
            Chaos("redis_sigkill", kill_redis(rs, down_for=0.5), every=2.0, times=3)
        ],
    )
    assert report["problems"] == []
    assert report["chaos_actions"] == {"redis_sigkill": 3}
    assert report["lost"] == 0 and report["double_applied"] == 0
