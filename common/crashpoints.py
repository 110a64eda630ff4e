"""Named crash points for fault-injection tests (tests/reliability).

``DLCSYNC_CRASH_POINTS="inbox.after_commit:0.05,task.after_commit:0.02"`` makes the process
die abruptly (``os._exit``, like SIGKILL: no cleanup, no ack, no rollback beyond what the
database does itself) with the given probability each time the named point is reached.
Unset in production: then ``reach`` costs one dict lookup.

Points: ``inbox.after_commit`` (webhook stored, not yet enqueued), ``provider.after_call``
(provider answered, result not yet committed), ``task.after_commit`` (task's work committed,
message not yet acked), ``alert.after_send`` (alert sent, not yet marked sent).
"""

from __future__ import annotations

import os
import random

EXIT_CODE = 137


def _parse(spec: str) -> dict[str, float]:
    points: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, prob = item.partition(":")
        try:
            points[name] = float(prob) if prob else 1.0
        except ValueError:
            continue
    return points


_POINTS = _parse(os.environ.get("DLCSYNC_CRASH_POINTS", ""))


def reach(name: str) -> None:
    probability = _POINTS.get(name)
    if probability and random.random() < probability:
        os._exit(EXIT_CODE)
