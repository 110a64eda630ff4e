"""The delivery states of one alert row (``Alert.state``)::

    pending --claim--> sending --ok--------------> sent    (or "logged": no ALERT_URLS)
       ^                  |  \\--error, attempts < MAX_ATTEMPTS--> pending (next_attempt_at
       |                  |                                        = now + jittered backoff)
       |                  \\--error, attempts = MAX_ATTEMPTS--> failed (gave up)
       |  (lease expired: the worker died mid-send; claimed again, which may send twice)
       \\-- sending with next_attempt_at in the past
    pending --burst of its (kind, provider, campaign)--> grouped (digest_id = the digest row)

The moves are made by :mod:`.delivery` (claim, finish, retry) and :mod:`.grouping` (digests).
"""

from __future__ import annotations

import enum


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    #: Delivered to the log only, because no ALERT_URLS are configured.
    LOGGED = "logged"
    FAILED = "failed"
    GROUPED = "grouped"
