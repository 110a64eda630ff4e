"""The stored-delivery format (``providers.delivery``): what the view writes reads back the same."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from models.statemachine import Direction, Signal
from models.tables import InboxItem
from providers.base import CallbackEvent, CallbackRequest, Trust
from providers.delivery import (
    event_record,
    stored_event,
    stored_headers,
    stored_request,
    unstorable,
)
from tests.worker.test_inbox_processing import FakeHandler

REQUEST = CallbackRequest(
    method="GET",
    url="https://x.example/webhooks/plivo?status=success&number=12025550100",
    headers={"x-sig": "SECRET", "content-type": "text/plain", "x-other": "dropped"},
    body=b"raw",
    content_type="text/plain",
    query={"status": "success", "number": "12025550100"},
)


def test_request_round_trip_with_signatures_as_digests() -> None:
    headers = stored_headers(REQUEST, {"x-sig", "content-type"}, {"x-sig"})
    assert "x-other" not in headers and "SECRET" not in str(headers)
    assert headers["x-sig"].startswith("sha256:")
    back = stored_request(InboxItem(provider="plivo", dedupe_key="k", body=b"raw", headers=headers))
    assert (back.method, back.url, back.body, dict(back.query)) == (
        REQUEST.method,
        REQUEST.url,
        REQUEST.body,
        dict(REQUEST.query),
    )
    assert back.content_type == "text/plain"


@pytest.mark.parametrize("trust", list(Trust))
def test_event_round_trip(trust: Trust) -> None:
    event = CallbackEvent(
        dedupe_key="k",
        relevant=True,
        number="+12025550100",
        campaign_id="C1",
        provider_status="ASSIGNED",
        signal=Signal.LINKED,
        direction=Direction.UNLINK,
        event_id="e1",
        provider_time=datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        reason="because",
    )
    item = InboxItem(provider="p", dedupe_key="k", body=b"", event=event_record(event, trust))
    assert stored_event(item, FakeHandler()) == (event, trust)


@pytest.mark.parametrize(
    ("field", "value"), [("dedupe_key", "a\x00b"), ("reason", "\udc80"), ("number", "+1\x00")]
)
def test_unstorable_names_the_field(field: str, value: str) -> None:
    fields = {"dedupe_key": "k", "relevant": True, field: value}
    assert unstorable(CallbackEvent(**fields)) == field  # type: ignore[arg-type]
    assert unstorable(CallbackEvent(dedupe_key="ok é ✓", relevant=False)) is None
