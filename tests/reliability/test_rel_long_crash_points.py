"""Long mode: the named crash points (common.crashpoints) fire during the storm. gunicorn
replaces its dead workers, Celery's prefork master its dead children, and the supervisor
restarts a dead master. Alerts go to a real JSON endpoint so that alert.after_send is hit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.reliability.modes import MARKS
from tests.worker.alerting.alert_receiver import Receiver

pytestmark = MARKS


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def test_storm_with_crash_points(
    scenario: Callable[..., dict[str, Any]], receiver: Receiver
) -> None:
    report = scenario(
        "crash_points",
        web_env={"DLCSYNC_CRASH_POINTS": "inbox.after_commit:0.01"},
        worker_env={
            "DLCSYNC_CRASH_POINTS": (
                "provider.after_call:0.02,task.after_commit:0.01,alert.after_send:0.2"
            ),
            "ALERT_URLS": receiver.url(),
        },
        quiet_timeout=300,
    )
    assert report["problems"] == []
    reached = report["crash_points_reached"]
    assert reached.get("web", 0) >= 5 and reached.get("worker", 0) >= 5, reached
