"""The callback storm: ~2,100 callbacks over 400 numbers in CI (10,500 over 2,000 in long
mode), each delivered 1-5 times, shuffled, from 32 senders, with the poller racing them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.reliability.modes import MARKS

pytestmark = MARKS


def test_storm(scenario: Callable[..., dict[str, Any]]) -> None:
    report = scenario("storm")
    assert report["problems"] == []
    assert report["lost"] == 0 and report["double_applied"] == 0
