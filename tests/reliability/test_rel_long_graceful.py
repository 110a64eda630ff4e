"""Long mode: web (gunicorn) and worker (Celery) restarted gracefully (SIGTERM to the group,
then started again) in turn every 5 s during the storm."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from tests.reliability.chaos import Chaos, RelStack
from tests.reliability.modes import MARKS

pytestmark = MARKS


def alternate(st: RelStack, _redis: object) -> list[Chaos]:
    names = itertools.cycle(["web", "worker"])

    def act() -> None:
        name = next(names)
        st.wait_ready(name, 60)
        st.terminate(name)

    return [Chaos("graceful_restart", act, every=5.0)]


def test_storm_with_graceful_restarts(scenario: Callable[..., dict[str, Any]]) -> None:
    report = scenario("graceful_restarts", chaos=alternate, quiet_timeout=300)
    assert report["problems"] == []
    assert report["kills"].get("web_sigterm", 0) >= 2
    assert report["kills"].get("worker_sigterm", 0) >= 2
