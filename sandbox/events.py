"""A receiver for dlcsync's outbound events (``POST /_sandbox/events``), for trying out and
testing: it verifies each Standard Webhooks signature with the ``standardwebhooks``
package, can refuse a share of deliveries with 503 (to exercise retries), and keeps what it
received for ``GET /_sandbox/events``."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

#: Received events kept for GET (oldest dropped first).
KEEP = 100_000


class EventReceiver:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self._received: deque[dict[str, Any]] = deque(maxlen=KEEP)
        self.counts = {"accepted": 0, "refused": 0, "bad_signature": 0}

    def reset(self) -> None:
        with self._lock:
            self._received.clear()
            self.counts = dict.fromkeys(self.counts, 0)

    def receive(
        self,
        body: bytes,
        headers: Mapping[str, str],
        secret: str | None,
        refuse: Callable[[], bool],
    ) -> tuple[int, dict[str, Any]]:
        """(status, answer) for one delivery."""
        wanted = ("webhook-id", "webhook-timestamp", "webhook-signature")
        plain = {k: headers.get(k, "") for k in wanted}
        try:
            if secret is None:
                raise WebhookVerificationError("no event_secret configured")
            Webhook(secret).verify(body, plain)
        except WebhookVerificationError as exc:
            with self._lock:
                self.counts["bad_signature"] += 1
            return 401, {"error": f"signature: {exc}"}
        if refuse():
            with self._lock:
                self.counts["refused"] += 1
            return 503, {"error": "refused by event_refuse_ratio"}
        with self._lock:
            self._seq += 1
            self.counts["accepted"] += 1
            self._received.append(
                {
                    "seq": self._seq,
                    "webhook_id": plain["webhook-id"],
                    "received_at": time.time(),
                    "body": body.decode(),
                    "event": json.loads(body),
                }
            )
        return 200, {"ok": True}

    def log(self, since_seq: int = 0, limit: int = 1000) -> dict[str, Any]:
        with self._lock:
            items = [r for r in self._received if r["seq"] > since_seq][:limit]
            return {"counts": dict(self.counts), "events": items}
