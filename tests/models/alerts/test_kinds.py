"""Every alert kind is one member of ``AlertKind`` carrying its texts: each renders, single and
as a digest, with the fields its templates name, and a kind without texts is caught here."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

import pytest

from models.alerts.delivery import Claimed
from models.alerts.kinds import AlertKind, Severity
from models.alerts.messages import render

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def claim(kind: AlertKind, *, digest: bool) -> Claimed:
    payload = (
        {"count": 7, "numbers": ["+12025550001"], "reasons": {"Brand": 7}, "since": "a"}
        if digest
        else {"reason": "Brand not approved", "state": "PROCESSING", "provider_status": "X"}
    )
    return Claimed(
        id=9,
        attempts=1,
        kind=kind.value,
        provider="plivo",
        number=None if digest else "+12025550001",
        campaign_id="CMP1",
        payload=payload,
        is_digest=digest,
        created_at=T0,
        delivered_to=(),
    )


@pytest.mark.parametrize("kind", list(AlertKind))
def test_every_kind_has_its_texts_and_severity(kind: AlertKind) -> None:
    assert kind.what.strip() and kind.next_steps.strip()
    assert isinstance(kind.severity, Severity)
    assert AlertKind(kind.value) is kind


@pytest.mark.parametrize("kind", list(AlertKind))
@pytest.mark.parametrize("digest", [False, True])
def test_every_kind_renders(kind: AlertKind, digest: bool) -> None:
    message = render(claim(kind, digest=digest))
    assert message.severity == kind.severity.value
    assert message.doc["kind"] == kind.value and message.doc["digest"] is digest
    assert "{" not in message.text, "a template names a field render does not fill"
    assert (
        kind.next_steps.format(
            number="+12025550001" if not digest else "(no number)",
            campaign="CMP1",
            provider="plivo",
            state="PROCESSING" if not digest else "",
        )
        in message.text
    )
    if not digest:
        assert "+12025550001" in message.text and "Brand not approved" in message.text


def test_a_kind_without_its_texts_cannot_be_defined() -> None:
    with pytest.raises(TypeError, match="'new' needs a severity, a text and next steps"):

        class Kinds(enum.StrEnum):
            __new__ = AlertKind._new_member_  # the definition rule of AlertKind

            NEW = "new"
