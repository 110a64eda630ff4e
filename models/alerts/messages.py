"""The message an alert row is delivered as: what happened, to which number and campaign,
since when, why, and what to do next (the per-kind texts live in :mod:`.kinds`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.alerts.delivery import Claimed
from models.alerts.kinds import AlertKind

#: Numbers a digest's text names.
DIGEST_SAMPLE = 20


@dataclass(frozen=True)
class Message:
    title: str
    text: str
    #: The machine-readable form (the body sent to JSON endpoints).
    doc: dict[str, Any]
    severity: str


def render(claim: Claimed) -> Message:
    """What happened, to which number and campaign, since when, why, and what to do next."""
    p = claim.payload
    kind = AlertKind(claim.kind)
    fields = {
        "number": claim.number or p.get("number") or "(no number)",
        "campaign": claim.campaign_id or p.get("campaign_id") or "(no campaign)",
        "provider": claim.provider or p.get("provider") or "(no provider)",
        "state": p.get("state") or "",
    }
    numbers: list[str] = list(p.get("numbers") or ([claim.number] if claim.number else []))
    since = p.get("since") or claim.created_at.isoformat()
    next_steps = kind.next_steps.format(**fields)
    doc: dict[str, Any] = {
        "source": "dlcsync",
        "alert_id": claim.id,
        "kind": kind.value,
        "provider": claim.provider or p.get("provider"),
        "campaign_id": claim.campaign_id or p.get("campaign_id"),
        "numbers": numbers,
        "digest": claim.is_digest,
        "since": since,
        "next_steps": next_steps,
    }
    if claim.is_digest:
        count = int(p.get("count") or len(numbers))
        sample = numbers[:DIGEST_SAMPLE]
        more = f" and {count - len(sample):,} more" if count > len(sample) else ""
        reasons = "; ".join(f"{r} ({n})" for r, n in (p.get("reasons") or {}).items())
        title = f"[dlcsync] {count:,} x {kind.value} on campaign {fields['campaign']}"
        lines = [
            f"{count:,} {kind.value} alerts on campaign {fields['campaign']} at "
            f"{fields['provider']} between {p.get('since')} and {p.get('until')}.",
            f"Numbers: {', '.join(sample)}{more}.",
            f"Provider's reasons: {reasons or 'none given'}.",
            f"What to do: {next_steps}",
            "Every affected number: dlcsync alerts --kind "
            f"{kind.value} --json (digest {claim.id}).",
        ]
        doc |= {"count": count, "reasons": p.get("reasons") or {}, "until": p.get("until")}
    else:
        reason = p.get("reason") or "none given"
        status = p.get("provider_status")
        title = f"[dlcsync] {kind.value}: {fields['number']} on campaign {fields['campaign']}"
        label = "Provider's reason" if claim.number else "Reason"
        lines = [
            kind.what.format(**fields),
            f"Number: {fields['number']}; campaign: {fields['campaign']}; "
            f"provider: {fields['provider']}.",
            f"Since: {since}.",
            f"{label}: {reason}" + (f" (status {status})." if status else "."),
            f"What to do: {next_steps}",
        ]
        if p.get("inbox_id") is not None:
            lines.append(f"Inbox row: {p['inbox_id']}.")
        doc |= {
            "count": len(numbers),
            "reason": p.get("reason"),
            "provider_status": status,
            "state": p.get("state") or None,
            "generation": p.get("generation"),
        }
    text = "\n".join(lines)
    doc["title"] = title
    doc["text"] = text
    return Message(title=title, text=text, doc=doc, severity=kind.severity.value)
