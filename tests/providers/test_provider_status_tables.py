"""Every status-table entry, table-driven (REFERENCE §8.1, §8.2)."""

from __future__ import annotations

import pytest

from models.statemachine import Direction, Signal
from providers import plivo, telnyx

L, U = Direction.LINK, Direction.UNLINK

PLIVO_API = [
    ("PROCESSING", Signal.PENDING, None),
    ("COMPLETED", Signal.LINKED, None),
    ("FAILED", Signal.FAILED, None),
    ("completed", Signal.LINKED, None),
    ("UNREGISTERED", None, None),
    ("", None, None),
]
PLIVO_CALLBACK = [
    ("number_linking", "created", Signal.PENDING, L),
    ("number_linking", "success", Signal.LINKED, L),
    ("number_linking", "failed", Signal.FAILED, L),
    ("number_unlinking", "created", Signal.PENDING, U),
    ("number_unlinking", "success", Signal.NOT_LINKED, U),
    ("number_unlinking", "failed", Signal.FAILED, U),
    ("number_linking", "SUCCESS", Signal.LINKED, L),
    ("number_linking", "rejected", None, None),
    (None, "created", Signal.PENDING, None),
    (None, "failed", Signal.FAILED, None),
    (None, "success", None, None),
    (None, "COMPLETED", Signal.LINKED, None),
]
TELNYX_API = [
    ("PENDING_ASSIGNMENT", Signal.PENDING, L),
    ("ASSIGNED", Signal.LINKED, None),
    ("FAILED_ASSIGNMENT", Signal.FAILED, L),
    ("PENDING_UNASSIGNMENT", Signal.PENDING, U),
    ("FAILED_UNASSIGNMENT", Signal.FAILED, U),
    ("UNASSIGNED", None, None),
]
TELNYX_WEBHOOK = [
    ("ASSIGNMENT", "success", Signal.LINKED, L),
    ("ASSIGNMENT", "failed", Signal.FAILED, L),
    ("DELETION", "success", Signal.NOT_LINKED, U),
    ("DELETION", "failed", Signal.FAILED, U),
    ("STATUS_UPDATE", "ADDED", Signal.LINKED, None),
    ("STATUS_UPDATE", "PENDING", Signal.PENDING, None),
    ("STATUS_UPDATE", "DELETED", Signal.NOT_LINKED, None),
    ("STATUS_UPDATE", "FAILED", Signal.FAILED, None),
    ("ASSIGNMENT", "pending", None, None),
    ("STATUS_UPDATE", "SUSPENDED", None, None),
]


@pytest.mark.parametrize(("status", "signal", "direction"), PLIVO_API)
def test_plivo_api(status, signal, direction) -> None:
    assert plivo.map_api_status(status) == (signal, direction)


@pytest.mark.parametrize(("kind", "status", "signal", "direction"), PLIVO_CALLBACK)
def test_plivo_callback(kind, status, signal, direction) -> None:
    assert plivo.map_callback_status(kind, status) == (signal, direction)


@pytest.mark.parametrize(("status", "signal", "direction"), TELNYX_API)
def test_telnyx_api(status, signal, direction) -> None:
    assert telnyx.map_api_status(status) == (signal, direction)


@pytest.mark.parametrize(("kind", "status", "signal", "direction"), TELNYX_WEBHOOK)
def test_telnyx_webhook(kind, status, signal, direction) -> None:
    assert telnyx.map_webhook_status(kind, status) == (signal, direction)


def test_tables_are_fully_covered_by_these_tests() -> None:
    assert set(plivo.API_STATUS) <= {s for s, *_ in PLIVO_API}
    assert set(plivo.CALLBACK_STATUS) <= {(k, s) for k, s, *_ in PLIVO_CALLBACK}
    assert set(telnyx.API_STATUS) <= {s for s, *_ in TELNYX_API}
    assert set(telnyx.WEBHOOK_STATUS) <= {(k, s) for k, s, *_ in TELNYX_WEBHOOK}
