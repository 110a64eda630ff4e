"""Long mode: PostgreSQL stopped for 30 s during the storm. The web answers 503 (never 500)
while it is down; the senders retry like a provider; everything is applied once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.reliability.chaos import Chaos, stop_postgres_for
from tests.reliability.modes import MARKS

pytestmark = MARKS


def test_storm_with_postgres_down_30s(scenario: Callable[..., dict[str, Any]]) -> None:
    report = scenario(
        "postgres_down_30s",
        chaos=lambda st, rs: [
            Chaos("postgres_stop_30s", stop_postgres_for(30), every=3.0, times=1)
        ],
        allowed_statuses={200, 503},
        quiet_timeout=300,
    )
    assert report["problems"] == []
    assert report["http_status"].get("503", 0) > 0
