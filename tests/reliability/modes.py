"""CI mode or long mode (``DLCSYNC_RELIABILITY=long``), the sizes and the marks of each."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

LONG = os.environ.get("DLCSYNC_RELIABILITY", "").lower() == "long"
MODE = "long" if LONG else "ci"

# Long enough that most callbacks arrive before the first poll (so they are applied, not
# found already done); each callback also makes its number due for a poll at once.
POLL_INTERVAL = 30.0
#: dlcsync's configured rates per account (TELNYX_/PLIVO_RATE_LIMIT_PER_SECOND).
RATES = {"telnyx": 40.0, "plivo": 50.0}
#: The sandbox accounts' own limits: (requests, window seconds).
ACCOUNT_LIMITS = {"telnyx": (50, 1.0), "plivo": (300, 5.0)}
#: Arrival jitter: the limiter grants at most RATE per 1 s at dlcsync, but requests granted
#: back to back can reach the carrier a few ms apart from when they were granted.
JITTER = 1.1
CAMPAIGN_SIZE = 100


@dataclass(frozen=True)
class Size:
    telnyx: int
    plivo: int

    @property
    def numbers(self) -> int:
        return self.telnyx + self.plivo


# Telnyx numbers get 6 callbacks each, Plivo numbers 3; each is delivered 1-5 times.
# CI: 1,050 callbacks over 200 numbers; long: 10,500 callbacks over 2,000 numbers.
# DLCSYNC_RELIABILITY_SIZE="TELNYX,PLIVO" overrides both (for trying a scenario quickly).
SIZE = Size(telnyx=1500, plivo=500) if LONG else Size(telnyx=150, plivo=50)
if os.environ.get("DLCSYNC_RELIABILITY_SIZE"):
    _t, _p = os.environ["DLCSYNC_RELIABILITY_SIZE"].split(",")
    SIZE = Size(telnyx=int(_t), plivo=int(_p))

#: Applied by every scenario module.
MARKS = [
    pytest.mark.reliability,
    pytest.mark.integration,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.timeout(1800 if LONG else 240),
]
