"""What an alert can be about. Each kind carries its message: ``what`` happened and the
``next_steps`` to take (templates over ``{number}``, ``{campaign}``, ``{provider}`` and
``{state}``) and its severity. Adding a kind is one member here; :mod:`.messages` renders it.

Pure (no I/O, no project imports): the state machine decides which kind to raise.
"""

from __future__ import annotations

import enum
from typing import overload


class Severity(enum.StrEnum):
    """Apprise notify types: failures are "failure", the rest "warning"."""

    FAILURE = "failure"
    WARNING = "warning"


class AlertKind(enum.StrEnum):
    """What an alert is about, with its message texts and severity."""

    what: str
    next_steps: str
    severity: Severity

    # Members are defined with their texts; ``AlertKind("stuck")`` looks one up by value (Enum
    # does not call this then; the first overload tells mypy so).
    @overload
    def __new__(cls, value: str) -> AlertKind: ...
    @overload
    def __new__(cls, value: str, severity: Severity, what: str, next_steps: str) -> AlertKind: ...
    def __new__(
        cls,
        value: str,
        severity: Severity | None = None,
        what: str = "",
        next_steps: str = "",
    ) -> AlertKind:
        if severity is None or not what.strip() or not next_steps.strip():
            raise TypeError(f"alert kind {value!r} needs a severity, a text and next steps")
        member = str.__new__(cls, value)
        member._value_ = value
        member.severity = severity
        member.what = what
        member.next_steps = next_steps
        return member

    LINK_FAILED = (
        "link_failed",
        Severity.FAILURE,
        "Linking {number} to campaign {campaign} at {provider} FAILED.",
        "Read the provider's reason. Usual causes: the number is not in the account or not on "
        "a messaging profile, or the campaign is not active. Fix that, then request the link "
        "again: dlcsync link --provider {provider} --campaign {campaign} {number}",
    )
    UNLINK_FAILED = (
        "unlink_failed",
        Severity.FAILURE,
        "Unlinking {number} from campaign {campaign} at {provider} FAILED.",
        "The number may still send on the campaign. Read the provider's reason, then retry: "
        "dlcsync unlink --provider {provider} {number}; if it fails again, open a ticket with "
        "{provider} naming the number and the campaign.",
    )
    STUCK = (
        "stuck",
        Severity.WARNING,
        "{number} is stuck in {state} on campaign {campaign} at {provider}.",
        "Carrier provisioning normally finishes within 72 h. Poll now with dlcsync reconcile "
        "--campaign {campaign}; check the number in the {provider} console; if the provider "
        "shows it pending too, open a ticket with {provider} naming the number and campaign.",
    )
    DRIFT = (
        "drift",
        Severity.WARNING,
        "A poll found {number} {state} on campaign {campaign} at {provider}, which is not what "
        "dlcsync had recorded (drift). dlcsync now records the provider's state.",
        "Someone or something changed the number at the provider (console, another tool, a "
        "carrier revert). See dlcsync history {number}; if the change was not intended, "
        "request the link again with dlcsync link.",
    )
    UNKNOWN_STATUS = (
        "unknown_status",
        Severity.WARNING,
        "{provider} reported a status dlcsync does not know for {number} "
        "(campaign {campaign}); nothing was changed.",
        "Polling goes on and the link keeps its state. Report the status value to the dlcsync "
        "maintainers so it can be mapped (see the provider's changelog).",
    )
    DELIVERY_FAILED = (
        "delivery_failed",
        Severity.FAILURE,
        "A webhook delivery from {provider} could not be processed.",
        "Look at the worker logs and the inbox row named below; the link still converges "
        "from polling. Fix the cause if it is a bug or a bad payload.",
    )
    CREDENTIALS = (
        "credentials",
        Severity.FAILURE,
        "{provider} rejected dlcsync's API credentials.",
        "No request or poll reaches {provider} until this is fixed. Check PLIVO_AUTH_ID and "
        "PLIVO_AUTH_TOKEN or TELNYX_API_KEY (revoked, rotated, typo), then restart the worker.",
    )
    CARRIER_MAPPING_FAILED = (
        "carrier_mapping_failed",
        Severity.FAILURE,
        "{number} is linked to campaign {campaign} at {provider}, but a carrier's mapping "
        "FAILED: messages to that carrier's subscribers are filtered.",
        "Open a ticket with {provider} naming the number, the campaign and the carrier; they "
        "can re-push the mapping. If it stays FAILED, unlink and link the number again: "
        "dlcsync unlink --provider {provider} {number}, then dlcsync link --provider "
        "{provider} --campaign {campaign} {number}. See dlcsync history {number}.",
    )
    CAMPAIGN_EMPTY = (
        "campaign_empty",
        Severity.WARNING,
        "Campaign {campaign} at {provider} has had no linked number.",
        "Link a number to the campaign (dlcsync link --provider {provider} --campaign "
        "{campaign} NUMBER) before the provider's deadline, or deactivate the campaign at "
        "{provider} if it is no longer needed.",
    )
    CAMPAIGN_FAILING = (
        "campaign_failing",
        Severity.FAILURE,
        "Most link requests on campaign {campaign} at {provider} fail.",
        "Stop sending link requests to this campaign and check it at {provider}: its status "
        "(suspended, expired), its number limit, and whether the numbers are in the account "
        "and on a messaging profile. See dlcsync status --campaign {campaign} --state FAILED.",
    )
