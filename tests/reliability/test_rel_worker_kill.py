"""The storm while the Celery worker (master and pool) is SIGKILLed every 2 s and restarted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.reliability.chaos import Chaos, kill_worker_when_up
from tests.reliability.modes import MARKS

pytestmark = MARKS


def test_storm_with_worker_sigkill_every_2s(scenario: Callable[..., dict[str, Any]]) -> None:
    report = scenario(
        "worker_sigkill",
        chaos=lambda st, rs: [Chaos("worker_sigkill", kill_worker_when_up(st), every=2.0)],
    )
    assert report["problems"] == []
    assert report["kills"].get("worker", 0) >= 3
    assert report["lost"] == 0 and report["double_applied"] == 0
