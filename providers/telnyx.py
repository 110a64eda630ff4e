"""Telnyx 10DLC phone-number campaigns: API client, status tables, webhook check and parsing.

Facts and sources: ``shared/providers/REFERENCE.md`` §4-5 and §8.2 (OpenAPI
``team-telnyx/openapi`` ``PhoneNumberCampaign*``; SDK ``telnyx`` 4.189.0
``resources/messaging_10dlc/phone_number_campaigns.py`` and ``lib/webhook_verification.py``;
https://developers.telnyx.com/docs/messaging/10dlc/event-notifications).

Wire quirks kept here:

* ``/v2/10dlc/phone_number_campaigns`` (the camelCase ``phoneNumberCampaign`` is a legacy
  alias); numbers are E.164 with the ``+`` percent-encoded in paths (``%2B``).
* Single-object answers are the bare ``PhoneNumberCampaign`` per the spec, but Telnyx's guides
  read ``result["data"]``: both are accepted. ``assignmentStatus`` falls back to ``status``.
* The list pages with ``page``/``recordsPerPage``. Its filter depends on the campaign id: the
  spec declares ``filter[telnyx_campaign_id]`` ``format: uuid``, so a campaign shared with us by
  another CSP, known by its TCR id (``C4X7Q2A``), is listed with ``filter[tcr_campaign_id]``
  (REFERENCE §12; the spec is vendored in ``sandbox/specs/``, whose sandbox refuses what it
  refuses). We page until ``totalRecords`` records came or a page is empty, never stopping on
  a short page alone: Telnyx may cap ``recordsPerPage`` below what we ask. (The SDK's own
  paginator compares the page number with ``totalRecords``.)
* Errors are ``{"errors": [{"code", "title", "detail"}]}``; rate limits come as
  ``x-ratelimit-*`` headers.
* Webhooks: Ed25519 over ``f"{telnyx-timestamp}|{raw body}"``, 300 s window either way.
  Phone-number events name the campaign in ``campaignId`` (the Telnyx UUID) and, for
  ``STATUS_UPDATE``, ``tcrCampaignId`` too: both are kept, and the link's own id wins
  (:meth:`~providers.base.CallbackEvent.campaign_for`). Campaign events come to the same URL,
  wrapped (``10dlc.campaign.update``) or flat (the spec's ``campaignStatusUpdate``, no ``data``):
  they are valid and not about numbers, so they are ignored, never refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from models.numbers import is_e164
from models.statemachine import Direction, Signal

from .base import (
    CallbackEvent,
    CallbackHandler,
    CallbackParseError,
    CallbackRequest,
    CampaignInfo,
    MalformedResponse,
    NoLimit,
    NumberStatus,
    PermanentProviderError,
    ProviderClient,
    RateLimiter,
    Trust,
    VerificationError,
)
from .http import (
    check_page_size,
    decode_json,
    error_json,
    make_http_client,
    malformed,
    perform_checked,
)
from .spec import ClientWiring, ProviderSpec

if TYPE_CHECKING:
    from common.settings import Settings

NAME = "telnyx"
PATH = "/v2/10dlc/phone_number_campaigns"
#: Campaign lookups (REFERENCE §12): own campaigns by UUID, shared ones by TCR id.
CAMPAIGN_PATH = "/v2/10dlc/campaign/"
PARTNER_CAMPAIGN_PATH = "/v2/10dlc/partner_campaigns/"

#: ``campaignStatus`` values after which a campaign cannot take numbers (REFERENCE §12).
CAMPAIGN_REFUSES = frozenset(
    {
        "TCR_SUSPENDED",
        "TCR_EXPIRED",
        "TCR_FAILED",
        "TELNYX_FAILED",
        "MNO_REJECTED",
        "MNO_PROVISIONING_FAILED",
    }
)
CAMPAIGN_ACCEPTS = frozenset({"MNO_PROVISIONED"})
#: A dormant campaign's first assignment fails and reactivates it (REFERENCE §12).
_DORMANT = re.compile(r"dormant", re.IGNORECASE)

# --- status tables (REFERENCE §8.2) -------------------------------------------------------

#: ``assignmentStatus`` of a PhoneNumberCampaign (POST/PUT/GET/DELETE/list answers).
API_STATUS: Mapping[str, tuple[Signal, Direction | None]] = {
    "PENDING_ASSIGNMENT": (Signal.PENDING, Direction.LINK),
    "ASSIGNED": (Signal.LINKED, None),
    "FAILED_ASSIGNMENT": (Signal.FAILED, Direction.LINK),
    "PENDING_UNASSIGNMENT": (Signal.PENDING, Direction.UNLINK),
    "FAILED_UNASSIGNMENT": (Signal.FAILED, Direction.UNLINK),
}

#: Webhook ``10dlc.phone_number.update`` (payload.type, payload.status) -> meaning.
#: The "failed" value of ASSIGNMENT/DELETION is UNCONFIRMED (REFERENCE §5.2).
WEBHOOK_STATUS: Mapping[tuple[str, str], tuple[Signal, Direction | None]] = {
    ("ASSIGNMENT", "success"): (Signal.LINKED, Direction.LINK),
    ("ASSIGNMENT", "failed"): (Signal.FAILED, Direction.LINK),
    ("DELETION", "success"): (Signal.NOT_LINKED, Direction.UNLINK),
    ("DELETION", "failed"): (Signal.FAILED, Direction.UNLINK),
    ("STATUS_UPDATE", "ADDED"): (Signal.LINKED, None),
    ("STATUS_UPDATE", "PENDING"): (Signal.PENDING, None),
    ("STATUS_UPDATE", "DELETED"): (Signal.NOT_LINKED, None),
    ("STATUS_UPDATE", "FAILED"): (Signal.FAILED, None),
}

PHONE_NUMBER_EVENT = "10dlc.phone_number.update"
WEBHOOK_TYPES = frozenset(t for t, _ in WEBHOOK_STATUS)

SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"
#: The SDK's window (``TIMESTAMP_TOLERANCE_SECONDS``), applied to past and future alike.
TOLERANCE_SECONDS = 300.0

_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_MAX_SIGNATURE_HEADER = 256
_MAX_FIELD = 1024


def map_api_status(status: str) -> tuple[Signal | None, Direction | None]:
    return API_STATUS.get(status.strip().upper(), (None, None))


def map_webhook_status(kind: str, status: str) -> tuple[Signal | None, Direction | None]:
    kind = kind.strip().upper()
    status = status.strip()
    if kind == "STATUS_UPDATE":
        return WEBHOOK_STATUS.get((kind, status.upper()), (None, None))
    return WEBHOOK_STATUS.get((kind, status.lower()), (None, None))


#: Per-carrier mapping fields of an assignment record (REFERENCE §12) -> our carrier names.
MAPPING_FIELDS = {
    "tmobileNumberMappingStatus": "tmobile",
    "nonTmobileNumberMappingStatus": "non_tmobile",
    "attNumberMappingStatus": "att",
}


def carrier_mapping(item: Mapping[str, Any]) -> tuple[tuple[str, str], ...] | None:
    """The record's per-carrier mapping statuses (ADDED, PENDING, FAILED...), or None.

    Values are kept as sent (upper-cased, at most 32 characters); absent or non-string
    fields are left out, so a record without them changes nothing stored.
    """
    found = [
        (carrier, value.strip().upper()[:32])
        for name, carrier in MAPPING_FIELDS.items()
        if isinstance(value := item.get(name), str) and value.strip()
    ]
    return tuple(sorted(found)) or None


def parse_time(value: object) -> datetime | None:
    """Telnyx timestamps (``2021-03-08T17:57:48.801186``, ``...+00:00``, ``...Z``) as aware
    UTC; naive ones are UTC. ``None`` when absent or unreadable."""
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


# --- HTTP client ----------------------------------------------------------------------------


def make_telnyx_http(
    api_url: str,
    api_key: str,
    *,
    timeout: httpx.Timeout | float | None = None,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """The pooled client for one Telnyx account: base URL, Bearer auth, JSON."""
    return make_http_client(
        api_url,
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        timeout=timeout,
        transport=transport,
    )


def _telnyx_error(response: httpx.Response) -> tuple[str | None, str | None]:
    body = error_json(response)
    if not isinstance(body, dict):
        return None, None
    errors = body.get("errors")
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None, None
    first = errors[0]
    code = first.get("code")
    parts = [first.get("title"), first.get("detail")]
    text = ": ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    return (text[:500] or None), (str(code)[:40] if isinstance(code, str | int) else None)


def is_dormant_failure(
    signal: Signal | None, direction: Direction | None, reason: str | None
) -> bool:
    """A failed assignment whose reason says the campaign was dormant: Telnyx's documented
    cure is to assign again (the failure reactivated the campaign)."""
    return (
        signal is Signal.FAILED
        and direction is not Direction.UNLINK
        and _DORMANT.search(reason or "") is not None
    )


def is_uuid(value: str) -> bool:
    """Telnyx's own campaign ids are UUIDs; anything else is a TCR id (a shared campaign)."""
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    # uuid.UUID also takes braces, URNs and undashed hex; the spec's ``format: uuid`` does not.
    return len(value) == 36 and all(value[i] == "-" for i in (8, 13, 18, 23))


def campaign_filter(campaign_id: str) -> dict[str, str]:
    """The list filter for a campaign: its Telnyx UUID, or the TCR id of a shared campaign."""
    key = "filter[telnyx_campaign_id]" if is_uuid(campaign_id) else "filter[tcr_campaign_id]"
    return {key: campaign_id}


def _flag(body: Mapping[str, Any], *keys: str) -> bool | None:
    """True if any key is true, False if all present ones are false, None if none is a bool."""
    values = [body.get(k) for k in keys if isinstance(body.get(k), bool)]
    if not values:
        return None
    return any(values)


def campaign_info(campaign_id: str, body: Mapping[str, Any], *, own: bool) -> CampaignInfo:
    """A ``TelnyxCampaign_CSP`` (own) or ``TelnyxDownstreamCampaign`` (shared) as CampaignInfo."""
    status = body.get("status") if own else None
    tcr_status = body.get("campaignStatus")
    status = status if isinstance(status, str) else None
    tcr_status = tcr_status if isinstance(tcr_status, str) else None
    can: bool | None = None
    why: str | None = None
    if status is not None and status.upper() == "EXPIRED":
        can, why = False, "campaign status is EXPIRED"
    elif own and body.get("isTMobileSuspended") is True:
        can, why = False, "campaign is suspended by T-Mobile"
    elif tcr_status is not None and tcr_status.upper() in CAMPAIGN_REFUSES:
        can, why = False, f"campaign status is {tcr_status}"
    elif tcr_status is not None and tcr_status.upper() in CAMPAIGN_ACCEPTS:
        can = True
    pooling_keys = (
        ("isTMobileNumberPoolingEnabled", "numberPool")
        if own
        else ("isNumberPoolingEnabled", "numberPool")
    )
    usecase = body.get("usecase")
    shown = "/".join(s for s in (tcr_status, status) if s)
    return CampaignInfo(
        campaign_id,
        status=shown or None,
        can_take_numbers=can,
        why=why,
        number_pooling=_flag(body, *pooling_keys),
        usecase=usecase if isinstance(usecase, str) and usecase else None,
    )


def _path(number: str) -> str:
    if not is_e164(number):
        raise PermanentProviderError(f"telnyx: not an E.164 number: {str(number)[:40]!r}")
    return f"{PATH}/{quote(number, safe='')}"


class TelnyxClient(ProviderClient):
    """Telnyx's phone-number-campaign API over a shared ``httpx.Client``
    (:func:`make_telnyx_http`: base URL ``https://api.telnyx.com``, Bearer auth)."""

    name: ClassVar[str] = NAME
    batch_link: ClassVar[bool] = False
    supports_move: ClassVar[bool] = True

    def __init__(
        self,
        http: httpx.Client,
        *,
        limiter: RateLimiter | None = None,
        page_size: int = 50,
        max_pages: int = 10_000,
    ) -> None:
        self.http = http
        self.limiter: RateLimiter = limiter if limiter is not None else NoLimit()
        self.page_size = page_size
        self.max_pages = max_pages

    def _call(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str | int] | None = None,
        number_scoped: bool,
    ) -> httpx.Response:
        return perform_checked(
            self.http,
            self.limiter,
            method,
            url,
            provider=NAME,
            error_of=_telnyx_error,
            number_scoped=number_scoped,
            json_body=json_body,
            params=params,
        )

    def link(self, campaign_id: str, numbers: list[str]) -> list[NumberStatus]:
        # One number per request (batch_link is False): the worker sends one at a time.
        return [self._link_one(campaign_id, number) for number in numbers]

    def _link_one(self, campaign_id: str, number: str) -> NumberStatus:
        _path(number)  # validates
        response = self._call(
            "POST",
            PATH,
            json_body={"phoneNumber": number, "campaignId": campaign_id},
            number_scoped=False,
        )
        return self._record(response, campaign_id, number, default=Direction.LINK)

    def unlink(self, campaign_id: str, number: str) -> NumberStatus:
        response = self._call("DELETE", _path(number), number_scoped=True)
        if not response.content.strip():
            return NumberStatus(
                number=number,
                campaign_id=campaign_id,
                provider_status="DELETED",
                signal=Signal.PENDING,
                direction=Direction.UNLINK,
            )
        return self._record(response, campaign_id, number, default=Direction.UNLINK)

    def get(self, campaign_id: str, number: str) -> NumberStatus:
        # The answer may name another campaign: that is reported, not hidden (drift/move).
        response = self._call("GET", _path(number), number_scoped=True)
        return self._record(response, campaign_id, number)

    def move(self, number: str, from_campaign: str, to_campaign: str) -> NumberStatus:
        response = self._call(
            "PUT",
            _path(number),
            json_body={"phoneNumber": number, "campaignId": to_campaign},
            number_scoped=True,
        )
        return self._record(response, to_campaign, number, default=Direction.LINK)

    def list_campaign(self, campaign_id: str) -> list[NumberStatus]:
        return self._list(campaign_filter(campaign_id), campaign_id)

    def list_account(self) -> list[NumberStatus]:
        # No filter: every phone-number-campaign of the account, each with its own campaign.
        return self._list({}, "")

    def _list(self, filters: Mapping[str, str], campaign_id: str) -> list[NumberStatus]:
        what = f"campaign {campaign_id}" if campaign_id else "the account"
        seen: dict[str, NumberStatus] = {}
        received = 0
        for page in range(1, self.max_pages + 1):
            response = self._call(
                "GET",
                PATH,
                params={
                    **filters,
                    "page": page,
                    "recordsPerPage": self.page_size,
                    # Oldest first: numbers added while we page land at the end.
                    "sort": "createdAt",
                },
                number_scoped=False,
            )
            records, total = self._page(response)
            for item in records:
                status = self._parse_record(response, item, campaign_id, None)
                seen[status.number] = status
            received += len(records)
            if not records or (total is not None and received >= total):
                return list(seen.values())
        raise MalformedResponse(f"telnyx: {what} has more than {self.max_pages} pages; giving up")

    def campaign(self, campaign_id: str) -> CampaignInfo:
        # Own campaigns have a UUID; a campaign shared by another CSP is known by its TCR id.
        own = is_uuid(campaign_id)
        path = CAMPAIGN_PATH if own else PARTNER_CAMPAIGN_PATH
        try:
            response = self._call("GET", path + quote(campaign_id, safe=""), number_scoped=False)
        except PermanentProviderError as exc:
            if exc.status == 404:
                return CampaignInfo(campaign_id, exists=False, why=str(exc))
            raise
        body = decode_json(response, provider=NAME)
        if isinstance(body, dict) and isinstance(body.get("data"), dict):
            body = body["data"]
        if not isinstance(body, dict):
            raise malformed(response, NAME, "a campaign is not a JSON object")
        return campaign_info(campaign_id, body, own=own)

    @staticmethod
    def is_dormant_failure(status: NumberStatus) -> bool:
        return is_dormant_failure(status.signal, status.direction, status.reason)

    def _page(self, response: httpx.Response) -> tuple[list[Any], int | None]:
        """One ``PhoneNumberCampaignPaginated``: its records (never more than we asked for)
        and ``totalRecords`` (``meta.total_results`` in the guides' shape)."""
        body = decode_json(response, provider=NAME)
        if isinstance(body, dict) and isinstance(body.get("data"), dict):
            body = body["data"]
        if not isinstance(body, dict):
            raise malformed(response, NAME, "expected a JSON object")
        records = body.get("records")
        if records is None and isinstance(body.get("data"), list):
            records = body["data"]
        if not isinstance(records, list):
            raise malformed(response, NAME, "'records' is missing or not a list")
        check_page_size(response, NAME, records, asked=self.page_size)
        total = body.get("totalRecords")
        if total is None and isinstance(body.get("meta"), dict):
            total = body["meta"].get("total_results")
        if total is not None and (isinstance(total, bool) or not isinstance(total, int)):
            raise malformed(response, NAME, "'totalRecords' is not an integer")
        return records, total

    def _record(
        self,
        response: httpx.Response,
        campaign_id: str,
        number: str,
        default: Direction | None = None,
    ) -> NumberStatus:
        body = decode_json(response, provider=NAME)
        if isinstance(body, dict) and isinstance(body.get("data"), dict):
            body = body["data"]
        status = self._parse_record(response, body, campaign_id, default)
        if status.number != number:
            raise malformed(response, NAME, f"the answer is about {status.number}, not {number}")
        return status

    @staticmethod
    def _parse_record(
        response: httpx.Response,
        item: Any,
        campaign_id: str,
        default: Direction | None,
    ) -> NumberStatus:
        if not isinstance(item, dict):
            raise malformed(response, NAME, "a phone number campaign is not an object")
        number = item.get("phoneNumber")
        if not is_e164(number):
            raise malformed(response, NAME, f"bad 'phoneNumber' {str(number)[:40]!r}")
        number = str(number)
        status = item.get("assignmentStatus", item.get("status"))
        if not isinstance(status, str):
            raise malformed(response, NAME, "no string 'assignmentStatus'")
        ids = [item.get(k) for k in ("campaignId", "telnyxCampaignId", "tcrCampaignId")]
        ids = [i for i in ids if isinstance(i, str) and i]
        if not ids:
            raise malformed(response, NAME, "no 'campaignId'")
        # Shared campaigns answer with the TCR id; report the id we asked about when it is one
        # of the record's ids, so "another campaign" is never a false alarm.
        answered = campaign_id if campaign_id in ids else ids[0]
        signal, direction = map_api_status(status)
        reasons = item.get("failureReasons")
        if isinstance(reasons, list):
            reasons = "; ".join(str(r) for r in reasons if r)
        reason = reasons if isinstance(reasons, str) and reasons else None
        direction = direction if signal is not None else None
        return NumberStatus(
            number=number,
            campaign_id=answered,
            provider_status=status,
            signal=signal,
            direction=direction,
            provider_time=parse_time(item.get("updatedAt")),
            reason=reason,
            retry_once=is_dormant_failure(signal, direction or default, reason),
            carrier_mapping=carrier_mapping(item),
        )


# --- webhook signature (REFERENCE §5.3) -------------------------------------------------------


def decode_public_key(public_key_b64: str) -> Ed25519PublicKey:
    """The portal's base64 public key. Raises ValueError when it is not 32 bytes of base64."""
    try:
        raw = base64.b64decode(public_key_b64.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("Telnyx public key is not valid base64") from exc
    if len(raw) != 32:
        raise ValueError(f"Telnyx public key must be 32 bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def verify_signature(
    public_key: Ed25519PublicKey | str,
    timestamp: str,
    body: bytes,
    signature_b64: str,
    *,
    now: float | None = None,
    tolerance: float = TOLERANCE_SECONDS,
) -> None:
    """Check a Telnyx webhook: raises :class:`VerificationError`, whatever is wrong."""
    try:
        key = decode_public_key(public_key) if isinstance(public_key, str) else public_key
    except ValueError as exc:
        raise VerificationError(f"telnyx: {exc}") from exc
    if not isinstance(timestamp, str) or _TIMESTAMP.fullmatch(timestamp) is None:
        raise VerificationError("telnyx: bad telnyx-timestamp header")
    current = time.time() if now is None else now
    if not abs(current - int(timestamp)) <= tolerance:  # also refuses a NaN clock
        raise VerificationError("telnyx: webhook timestamp outside the 300 s window")
    if not isinstance(signature_b64, str) or len(signature_b64) > _MAX_SIGNATURE_HEADER:
        raise VerificationError("telnyx: bad signature header")
    try:
        signature = base64.b64decode(signature_b64.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VerificationError("telnyx: signature is not valid base64") from exc
    if len(signature) != 64:
        raise VerificationError(f"telnyx: signature must be 64 bytes, got {len(signature)}")
    try:
        body.decode("utf-8")  # the SDK signs the body as text; non-UTF-8 cannot be ours
    except UnicodeDecodeError as exc:
        raise VerificationError("telnyx: body is not UTF-8") from exc
    # The timestamp exactly as sent (the signed string), then "|" and the raw body.
    message = timestamp.encode("ascii") + b"|" + body
    try:
        key.verify(signature, message)
    except InvalidSignature as exc:
        raise VerificationError("telnyx: signature does not match") from exc


def _get_header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == name:
            return value if isinstance(value, str) else None
    return None


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CallbackParseError(f"telnyx: missing or invalid {what}")
    if len(value) > _MAX_FIELD:
        raise CallbackParseError(f"telnyx: {what} too long")
    return value.strip()


def _reasons(value: object) -> str | None:
    if isinstance(value, str):
        return value.strip()[:_MAX_FIELD] or None
    if not isinstance(value, list):
        return None
    texts: list[str] = []
    for item in value:
        if isinstance(item, str):
            texts.append(item.strip())
        elif isinstance(item, dict):
            for key in ("description", "detail", "message", "title"):
                if isinstance(item.get(key), str):
                    texts.append(item[key].strip())
                    break
    joined = "; ".join(t for t in texts if t)
    return joined[:_MAX_FIELD] or None


def _optional_text(value: object) -> str | None:
    if isinstance(value, str) and value.strip() and len(value) <= _MAX_FIELD:
        return value.strip()
    return None


def _body_key(body: bytes) -> str:
    """A dedupe key for events that carry no id: the same body is the same event."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _campaign_status_update(document: Mapping[str, Any], body: bytes) -> CallbackEvent:
    """The spec's ``campaignStatusUpdate`` callback: a flat body without ``data`` (campaign
    ``type``/``status``, REFERENCE §12). About a campaign, not a number: ignored."""
    kind = _optional_text(document.get("type")) or "campaign status update"
    status = _optional_text(document.get("status"))
    shown = f"{kind}:{status}" if status else kind
    return CallbackEvent(
        dedupe_key=_body_key(body),
        relevant=False,
        provider_status=shown[:100],
        ignore_reason=f"campaign status update {shown[:100]!r} is not about a phone number",
    )


class TelnyxCallbackHandler(CallbackHandler):
    """Verifies and parses Telnyx 10DLC webhooks.

    ``public_key``: the account's base64 Ed25519 key; ``None`` (or a malformed key) refuses
    every callback. ``clock`` is injectable for tests; ``verify(now=...)`` overrides it.
    """

    name: ClassVar[str] = NAME
    signature_headers: ClassVar[frozenset[str]] = frozenset({SIGNATURE_HEADER})

    def __init__(
        self,
        public_key: str | None,
        *,
        tolerance: float = TOLERANCE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tolerance = tolerance
        self.clock = clock
        self.key: Ed25519PublicKey | None = None
        #: Why no key is usable (for a startup warning); ``None`` when the key is fine.
        self.key_error: str | None = "no Telnyx public key configured"
        if public_key:
            try:
                self.key = decode_public_key(public_key)
                self.key_error = None
            except ValueError as exc:
                self.key_error = str(exc)

    def verify(self, request: CallbackRequest, now: float | None = None) -> Trust:
        """Ed25519 over timestamp and body: a valid signature vouches for the body."""
        try:
            if self.key is None:
                raise VerificationError(f"telnyx: {self.key_error}")
            signature = _get_header(request.headers, SIGNATURE_HEADER)
            timestamp = _get_header(request.headers, TIMESTAMP_HEADER)
            if not signature:
                raise VerificationError(f"telnyx: missing {SIGNATURE_HEADER}")
            if not timestamp:
                raise VerificationError(f"telnyx: missing {TIMESTAMP_HEADER}")
            verify_signature(
                self.key,
                timestamp,
                request.body,
                signature,
                now=self.clock() if now is None else now,
                tolerance=self.tolerance,
            )
        except VerificationError:
            raise
        except Exception as exc:  # whatever the bytes, only VerificationError leaves
            raise VerificationError(
                f"telnyx: cannot check signature: {type(exc).__name__}"
            ) from exc
        return Trust.BODY

    def parse(self, request: CallbackRequest) -> CallbackEvent:
        try:
            return self._parse(request)
        except CallbackParseError:
            raise
        except Exception as exc:  # whatever the bytes, only CallbackParseError leaves
            raise CallbackParseError(f"telnyx: cannot parse webhook: {type(exc).__name__}") from exc

    def _parse(self, request: CallbackRequest) -> CallbackEvent:
        try:
            document = json.loads(request.body.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise CallbackParseError("telnyx: webhook body is not JSON") from exc
        if not isinstance(document, dict):
            raise CallbackParseError("telnyx: webhook body is not a JSON object")
        if "data" not in document:
            return _campaign_status_update(document, request.body)
        if not isinstance(document.get("data"), dict):
            raise CallbackParseError("telnyx: webhook without a 'data' object")
        data = document["data"]
        event_type = data.get("event_type")
        if event_type != PHONE_NUMBER_EVENT:
            # 10dlc.campaign.update, 10dlc.brand.update: signed, valid, not about numbers.
            event_id = _optional_text(data.get("id")) or _body_key(request.body)
            shown = str(event_type)[:100]
            return CallbackEvent(
                dedupe_key=event_id,
                relevant=False,
                event_id=event_id,
                provider_status=shown,
                ignore_reason=f"event type {shown!r} is not about phone number assignment",
            )
        event_id = _text(data.get("id"), "data.id")
        payload = data.get("payload")
        if not isinstance(payload, dict):
            raise CallbackParseError("telnyx: phone number event without a payload")
        kind = _text(payload.get("type"), "payload.type").upper()
        if kind not in WEBHOOK_TYPES:
            return CallbackEvent(
                dedupe_key=event_id,
                relevant=False,
                event_id=event_id,
                provider_status=kind[:100],
                ignore_reason=f"phone number event type {kind[:100]!r} is not handled",
            )
        number = payload.get("phoneNumber")
        if not is_e164(number):
            raise CallbackParseError(f"telnyx: invalid payload.phoneNumber {str(number)[:40]!r}")
        number = str(number)
        ids = tuple(
            dict.fromkeys(
                _text(payload[key], f"payload.{key}")
                for key in ("campaignId", "tcrCampaignId")
                if payload.get(key) is not None
            )
        )
        if not ids:
            raise CallbackParseError("telnyx: missing payload.campaignId")
        status = _text(payload.get("status"), "payload.status")
        occurred = data.get("occurred_at")
        provider_time = parse_time(occurred)
        if occurred is not None and provider_time is None:
            raise CallbackParseError("telnyx: unreadable data.occurred_at")
        signal, direction = map_webhook_status(kind, status)
        reason = _reasons(payload.get("reasons"))
        return CallbackEvent(
            dedupe_key=event_id,
            relevant=True,
            number=number,
            campaign_id=ids[0],
            campaign_ids=ids,
            provider_status=f"{kind}:{status}",
            signal=signal,
            direction=direction,
            event_id=event_id,
            provider_time=provider_time,
            reason=reason,
            retry_once=is_dormant_failure(signal, direction, reason),
        )


# --- what the rest of dlcsync knows about Telnyx -----------------------------------------


@dataclass(frozen=True)
class TelnyxConfig:
    api_key: str
    api_url: str


def telnyx_config(settings: Settings) -> TelnyxConfig | None:
    """Enabled when ``TELNYX_API_KEY`` is set (the public key only verifies webhooks)."""
    key = settings.telnyx_api_key.get_secret_value() if settings.telnyx_api_key else ""
    return TelnyxConfig(key, settings.telnyx_api_url) if key else None


def _client(config: TelnyxConfig, wiring: ClientWiring) -> TelnyxClient:
    http = make_telnyx_http(config.api_url, config.api_key, transport=wiring.transport)
    return TelnyxClient(http, limiter=wiring.limiter, page_size=wiring.page_size)


SPEC: ProviderSpec[TelnyxConfig] = ProviderSpec(
    name=NAME,
    env=("TELNYX_API_KEY",),
    config=telnyx_config,
    rate_limit=lambda settings: settings.telnyx_rate_limit_per_second,
    # Nothing in the spec caps recordsPerPage (REFERENCE §12); the sandbox allows 100.
    page_size=100,
    kept_headers=frozenset({"content-type", "user-agent", TIMESTAMP_HEADER, SIGNATURE_HEADER}),
    accepts_get=False,
    callback_handler=lambda settings: TelnyxCallbackHandler(settings.telnyx_public_key),
    client=_client,
)
