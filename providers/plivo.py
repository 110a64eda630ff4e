"""Plivo 10DLC number linking: API client, status tables, callback verification and parsing.

Facts and sources: ``shared/providers/REFERENCE.md`` §1-3 and §8.1
(https://www.plivo.com/docs/messaging/api/10dlc/number-linking,
https://plivo.com/docs/messaging/concepts/callbacks/10dlc-callbacks).

Wire quirks kept here:

* URLs are ``/v1/Account/{auth_id}/...`` and always end in ``/`` (every Plivo SDK does this).
* Numbers travel as digits without ``+`` (``12025551111``); E.164 inside dlcsync.
* Link and unlink carry ``url`` (our callback URL) and ``method: POST``; one link request may
  carry many numbers.
* Errors are ``{"api_id": ..., "error": "<text>"}`` with no code; "... is not linked to this
  campaign" means :class:`NotLinked` whatever the HTTP status.
* Callback field names and encoding are UNCONFIRMED: the parser is tolerant (form, JSON or GET
  query; lower-cased keys; aliases) and a poll confirms every callback.
* Signatures: V3 (HMAC-SHA256 over URL + sorted params + nonce, several comma-separated values
  allowed) decides whenever any V3 header is present. V2 (URL without query + nonce) does not
  sign the body: a callback verified by V2 alone, or by V3 computed without its body's params,
  is trusted as a hint only (:class:`~providers.base.Trust`). Both reimplemented from the SDK
  (``plivo/utils/signature_v3.py``, ``plivo/utils/__init__.py``) and checked against its vectors.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, quote, urlparse, urlunparse

import httpx

from models.numbers import InvalidNumber, is_e164, to_e164
from models.statemachine import Direction, Signal

from .base import (
    CallbackEvent,
    CallbackHandler,
    CallbackParseError,
    CallbackRequest,
    CampaignInfo,
    MalformedResponse,
    NoLimit,
    NotLinked,
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

NAME = "plivo"


# --- numbers on the wire: digits without "+" (read back with models.numbers.to_e164) ------


def e164_to_digits(number: str) -> str:
    """``+15551234567`` -> ``15551234567``. Raises ValueError."""
    if not is_e164(number):
        raise InvalidNumber(f"not an E.164 number: {str(number)[:40]!r}")
    return number[1:]


# --- status tables (REFERENCE §8.1) -------------------------------------------------------

#: Number status in list/get answers. Direction-neutral: PROCESSING may be a link or an unlink.
API_STATUS: Mapping[str, tuple[Signal, Direction | None]] = {
    "PROCESSING": (Signal.PENDING, None),
    "COMPLETED": (Signal.LINKED, None),
    "FAILED": (Signal.FAILED, None),
}

#: Callback (event, status) -> meaning. https://plivo.com/docs/messaging/concepts/callbacks/10dlc-callbacks
CALLBACK_STATUS: Mapping[tuple[str, str], tuple[Signal, Direction | None]] = {
    ("number_linking", "created"): (Signal.PENDING, Direction.LINK),
    ("number_linking", "success"): (Signal.LINKED, Direction.LINK),
    ("number_linking", "failed"): (Signal.FAILED, Direction.LINK),
    ("number_unlinking", "created"): (Signal.PENDING, Direction.UNLINK),
    ("number_unlinking", "success"): (Signal.NOT_LINKED, Direction.UNLINK),
    ("number_unlinking", "failed"): (Signal.FAILED, Direction.UNLINK),
}

#: Callback status when the event kind is missing. "success" means opposite things for a
#: link and an unlink, so it stays unknown (signal None) and the follow-up poll decides.
CALLBACK_STATUS_NO_KIND: Mapping[str, tuple[Signal, Direction | None]] = {
    "created": (Signal.PENDING, None),
    "failed": (Signal.FAILED, None),
}

#: Spellings of the callback kind we accept, normalised (lower case, ``-``/space -> ``_``).
KIND_ALIASES: Mapping[str, str] = {
    "number_linking": "number_linking",
    "number_link": "number_linking",
    "numberlinking": "number_linking",
    "number_unlinking": "number_unlinking",
    "number_unlink": "number_unlinking",
    "numberunlinking": "number_unlinking",
}

#: Field aliases in callbacks (REFERENCE §2, "Adapter recommendation"); keys are lower-cased.
STATUS_KEYS = ("status",)
CAMPAIGN_KEYS = ("campaign_id", "campaignid")
NUMBER_KEYS = ("number", "phone_number", "phonenumber", "numbers")
KIND_KEYS = ("endpoint", "event", "event_type", "type", "callback_type")
REASON_KEYS = ("reason", "error", "failure_reason", "status_reason", "message")

#: Link/unlink answers: the provider accepted the request (no number status in the body).
ACCEPTED = "ACCEPTED"

_NOT_LINKED_TEXT = re.compile(r"not\s+linked", re.IGNORECASE)

V3_HEADERS = ("x-plivo-signature-v3", "x-plivo-signature-ma-v3")
V3_NONCE = "x-plivo-signature-v3-nonce"
V2_HEADERS = ("x-plivo-signature-v2", "x-plivo-signature-ma-v2")
V2_NONCE = "x-plivo-signature-v2-nonce"
#: Limits against abusive headers (a signature is 44 characters).
_MAX_HEADER = 4096
_MAX_SIGNATURES = 16
_MAX_FIELD = 1024


def map_api_status(status: str) -> tuple[Signal | None, Direction | None]:
    return API_STATUS.get(status.strip().upper(), (None, None))


def map_callback_status(kind: str | None, status: str) -> tuple[Signal | None, Direction | None]:
    key = status.strip().lower()
    if kind is None:
        if key in CALLBACK_STATUS_NO_KIND:
            return CALLBACK_STATUS_NO_KIND[key]
        # Some tolerance: the API's own statuses are unambiguous without a kind.
        return API_STATUS.get(status.strip().upper(), (None, None))
    return CALLBACK_STATUS.get((kind, key), (None, None))


# --- HTTP client ----------------------------------------------------------------------------


def make_plivo_http(
    api_url: str,
    auth_id: str,
    auth_token: str,
    *,
    timeout: httpx.Timeout | float | None = None,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """The pooled client for one Plivo account: base URL, HTTP Basic auth, JSON."""
    return make_http_client(
        api_url,
        auth=httpx.BasicAuth(auth_id, auth_token),
        headers={"Content-Type": "application/json"},
        timeout=timeout,
        transport=transport,
    )


def _plivo_error(response: httpx.Response) -> tuple[str | None, str | None]:
    body = error_json(response)
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, str) and err.strip():
            return err.strip()[:500], None
        if err is not None:
            return json.dumps(err, default=str)[:500], None
        msg = body.get("message")
        if isinstance(msg, str) and msg.strip():
            return msg.strip()[:500], None
    return None, None


class PlivoClient(ProviderClient):
    """Plivo's 10DLC number-linking API over a shared ``httpx.Client``.

    ``http`` has the API base URL (``https://api.plivo.com``) and Basic auth
    (:func:`make_plivo_http`); ``callback_url`` is ``PUBLIC_URL + "/webhooks/plivo"``.
    """

    name: ClassVar[str] = NAME
    batch_link: ClassVar[bool] = True
    supports_move: ClassVar[bool] = False

    def __init__(
        self,
        http: httpx.Client,
        auth_id: str,
        callback_url: str,
        *,
        limiter: RateLimiter | None = None,
        page_size: int = 20,
        max_pages: int = 10_000,
    ) -> None:
        self.http = http
        self.auth_id = auth_id
        self.callback_url = callback_url
        self.limiter: RateLimiter = limiter if limiter is not None else NoLimit()
        self.page_size = page_size
        self.max_pages = max_pages

    # URLs -----------------------------------------------------------------------------------

    def _numbers_url(self, campaign_id: str) -> str:
        account = quote(self.auth_id, safe="")
        campaign = quote(campaign_id, safe="")
        return f"/v1/Account/{account}/10dlc/Campaign/{campaign}/Number/"

    def _campaigns_url(self) -> str:
        return f"/v1/Account/{quote(self.auth_id, safe='')}/10dlc/Campaign/"

    def _campaign_url(self, campaign_id: str) -> str:
        return f"{self._campaigns_url()}{quote(campaign_id, safe='')}/"

    def _number_url(self, campaign_id: str, number: str) -> str:
        return f"{self._numbers_url(campaign_id)}{quote(self._digits(number), safe='')}/"

    @staticmethod
    def _digits(number: str) -> str:
        try:
            return e164_to_digits(number)
        except ValueError as exc:
            raise PermanentProviderError(f"plivo: {exc}") from exc

    # One request ----------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str | int] | None = None,
        number_scoped: bool,
    ) -> httpx.Response:
        # Plivo answers "... is not linked to this campaign" (status UNCONFIRMED).
        return perform_checked(
            self.http,
            self.limiter,
            method,
            url,
            provider=NAME,
            error_of=_plivo_error,
            number_scoped=number_scoped,
            not_linked_text=_NOT_LINKED_TEXT,
            json_body=json_body,
            params=params,
        )

    def _accepted(self, response: httpx.Response) -> str | None:
        """A link/unlink 2xx: the body is optional, but when present it must be a JSON object."""
        body = decode_json(response, provider=NAME, allow_empty=True)
        if body is None:
            return None
        if not isinstance(body, dict):
            raise malformed(response, NAME, "expected a JSON object")
        message = body.get("message")
        return message if isinstance(message, str) else None

    # Operations -----------------------------------------------------------------------------

    def link(self, campaign_id: str, numbers: list[str]) -> list[NumberStatus]:
        if not numbers:
            return []
        digits = [self._digits(n) for n in numbers]
        response = self._call(
            "POST",
            self._numbers_url(campaign_id),
            json_body={"numbers": digits, "url": self.callback_url, "method": "POST"},
            number_scoped=False,
        )
        self._accepted(response)
        return [
            NumberStatus(
                number=n,
                campaign_id=campaign_id,
                provider_status=ACCEPTED,
                signal=Signal.PENDING,
                direction=Direction.LINK,
            )
            for n in numbers
        ]

    def unlink(self, campaign_id: str, number: str) -> NumberStatus:
        response = self._call(
            "DELETE",
            self._number_url(campaign_id, number),
            json_body={"url": self.callback_url, "method": "POST"},
            number_scoped=True,
        )
        self._accepted(response)
        return NumberStatus(
            number=number,
            campaign_id=campaign_id,
            provider_status=ACCEPTED,
            signal=Signal.PENDING,
            direction=Direction.UNLINK,
        )

    def get(self, campaign_id: str, number: str) -> NumberStatus:
        response = self._call("GET", self._number_url(campaign_id, number), number_scoped=True)
        entries = self._entries(response, campaign_id)
        if not entries:
            raise NotLinked(f"plivo: {number} is not linked to campaign {campaign_id}", status=200)
        for entry in entries:
            if entry.number == number:
                return entry
        raise malformed(response, NAME, f"the answer does not mention {number}")

    def list_campaign(self, campaign_id: str) -> list[NumberStatus]:
        # limit/offset paging (REFERENCE §1.2). Plivo's maximum ``limit`` is unconfirmed and it
        # may answer fewer than we ask, so a short page is not the end: the total is
        # (``meta.total_count``, else the sum of ``phone_numbers_summary``), or an empty page.
        seen: dict[str, NumberStatus] = {}
        offset = 0
        for _ in range(self.max_pages):
            response = self._call(
                "GET",
                self._numbers_url(campaign_id),
                params={"limit": self.page_size, "offset": offset},
                number_scoped=False,
            )
            page = check_page_size(
                response, NAME, self._entries(response, campaign_id), asked=self.page_size
            )
            new = [e for e in page if e.number not in seen]
            for entry in page:
                seen[entry.number] = entry
            total = _list_total(response)
            if not new or (total is not None and len(seen) >= total):
                # An empty page ends the list, and so does reaching the total; a page of only
                # known numbers means the provider ignores offset, and asking again would loop
                # forever.
                return list(seen.values())
            offset += len(page)
        raise MalformedResponse(
            f"plivo: campaign {campaign_id} has more than {self.max_pages} pages; giving up"
        )

    def list_campaigns(self) -> list[str]:
        """Every campaign id of the account (``GET .../10dlc/Campaign/``, paged by
        ``limit``/``offset`` up to ``meta.total_count``; REFERENCE §12)."""
        ids: list[str] = []
        offset = 0
        for _ in range(self.max_pages):
            response = self._call(
                "GET",
                self._campaigns_url(),
                params={"limit": self.page_size, "offset": offset},
                number_scoped=False,
            )
            body = decode_json(response, provider=NAME)
            if not isinstance(body, dict):
                raise malformed(response, NAME, "expected a JSON object")
            campaigns = body.get("campaigns") or []
            if not isinstance(campaigns, list):
                raise malformed(response, NAME, "'campaigns' is not a list")
            new = 0
            for item in campaigns:
                cid = item.get("campaign_id") if isinstance(item, dict) else None
                if not isinstance(cid, str) or not cid:
                    raise malformed(response, NAME, "a campaign without a 'campaign_id'")
                if cid not in ids:
                    ids.append(cid)
                    new += 1
            meta = body.get("meta")
            meta = meta if isinstance(meta, dict) else {}
            total = meta.get("total_count")
            done = isinstance(total, int) and len(ids) >= total
            if done or len(campaigns) < self.page_size or not new or meta.get("next") is None:
                return ids
            offset += len(campaigns)
        raise MalformedResponse(f"plivo: more than {self.max_pages} pages of campaigns; giving up")

    def list_account(self) -> list[NumberStatus]:
        return [s for cid in self.list_campaigns() for s in self.list_campaign(cid)]

    def campaign(self, campaign_id: str) -> CampaignInfo:
        try:
            response = self._call("GET", self._campaign_url(campaign_id), number_scoped=False)
        except PermanentProviderError as exc:
            if exc.status == 404:
                return CampaignInfo(campaign_id, exists=False, why=str(exc))
            raise
        body = decode_json(response, provider=NAME)
        campaign = body.get("campaign") if isinstance(body, dict) else None
        if not isinstance(campaign, dict):
            raise malformed(response, NAME, "no 'campaign' object")
        return campaign_info(campaign_id, campaign)

    def _entries(self, response: httpx.Response, campaign_id: str) -> list[NumberStatus]:
        body = decode_json(response, provider=NAME)
        if not isinstance(body, dict):
            raise malformed(response, NAME, "expected a JSON object")
        items = body.get("phone_numbers")
        if items is None:
            items = []
        if not isinstance(items, list):
            raise malformed(response, NAME, "'phone_numbers' is not a list")
        answered_campaign = body.get("campaign_id")
        if answered_campaign is not None and not isinstance(answered_campaign, str):
            raise malformed(response, NAME, "'campaign_id' is not a string")
        result: list[NumberStatus] = []
        for item in items:
            if not isinstance(item, dict):
                raise malformed(response, NAME, "a 'phone_numbers' entry is not an object")
            status = item.get("status")
            if not isinstance(status, str):
                raise malformed(response, NAME, "a number without a string 'status'")
            try:
                number = to_e164(item.get("number"))
            except ValueError as exc:
                raise malformed(response, NAME, str(exc)) from exc
            signal, direction = map_api_status(status)
            reason = item.get("failure_reason") or item.get("reason")
            result.append(
                NumberStatus(
                    number=number,
                    campaign_id=answered_campaign or campaign_id,
                    provider_status=status,
                    signal=signal,
                    direction=direction,
                    reason=reason if isinstance(reason, str) else None,
                )
            )
        return result


#: ``registration_status`` values (REFERENCE §12): what each says about taking numbers.
CAMPAIGN_STATUS: Mapping[str, bool | None] = {
    "ACTIVE": True,
    "PROCESSING": None,
    "FAILED": False,
    "EXPIRED": False,
}


def campaign_info(campaign_id: str, campaign: Mapping[str, Any]) -> CampaignInfo:
    """Plivo's ``campaign`` object as CampaignInfo. Plivo does not expose number pooling, so
    a cap comes from the operator's override (``dlcsync campaign set``) or the use case."""
    status = campaign.get("registration_status")
    status = status.strip() if isinstance(status, str) and status.strip() else None
    can = CAMPAIGN_STATUS.get(status.upper()) if status else None
    usecase = campaign.get("usecase")
    return CampaignInfo(
        campaign_id,
        status=status,
        can_take_numbers=can,
        why=f"campaign registration status is {status}" if can is False else None,
        usecase=usecase if isinstance(usecase, str) and usecase else None,
    )


# --- signatures (REFERENCE §3) --------------------------------------------------------------


def _list_total(response: httpx.Response) -> int | None:
    """How many numbers the campaign has: ``meta.total_count`` (Plivo's list shape elsewhere)
    or the sum of ``phone_numbers_summary`` (counts per status); ``None`` when neither."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    meta = body.get("meta")
    count = meta.get("total_count") if isinstance(meta, dict) else None
    if isinstance(count, int) and not isinstance(count, bool):
        return count
    summary = body.get("phone_numbers_summary")
    if not isinstance(summary, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in summary.values()
    ):
        return None
    return sum(summary.values())


def _fmt(value: Any) -> str:
    """The SDK renders scalars with ``str()``: ``True``, ``1``, ``None``."""
    if isinstance(value, bytes):
        return "".join(chr(b) for b in value)
    return value if isinstance(value, str) else str(value)


def _sorted_query_string(params: Mapping[str, Any]) -> str:
    parts = []
    for key in sorted(params):
        value = params[key]
        if isinstance(value, list):
            parts.append("&".join(f"{key}={v}" for v in sorted(_fmt(x) for x in value)))
        else:
            parts.append(f"{key}={_fmt(value)}")
    return "&".join(parts)


def _sorted_params_string(params: Mapping[str, Any]) -> str:
    parts = []
    for key in sorted(params):
        value = params[key]
        if isinstance(value, list):
            parts.append("".join(f"{key}{v}" for v in sorted(_fmt(x) for x in value)))
        elif isinstance(value, dict):
            parts.append(f"{key}{_sorted_params_string(value)}")
        else:
            parts.append(f"{key}{_fmt(value)}")
    return "".join(parts)


def _base_url(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    return urlunparse((parsed.scheme, parsed.netloc, parsed.path, "", "", "")), parsed.query


def v3_string_to_sign(method: str, url: str, params: Mapping[str, Any] | None, nonce: str) -> str:
    """The exact string the SDK signs (``construct_get_url``/``construct_post_url`` + nonce).

    GET merges the URL's query into the params (query wins) and appends ``?k=v&...``; POST
    appends ``?`` + the URL's own sorted query, ``.`` if that was non-empty, then the params as
    ``keyvalue`` pairs; POST without params behaves like GET without params.
    """
    params = dict(params or {})
    base, query = _base_url(url)
    query_map: dict[str, Any] = dict(parse_qs(query, keep_blank_values=True))
    if method == "GET" or not params:
        merged = {**params, **query_map} if method == "GET" else query_map
        qs = _sorted_query_string(merged)
        signed = f"{base}?{qs}" if qs else base
    else:
        qs = _sorted_query_string(query_map)
        signed = f"{base}?{qs}" + ("." if qs else "") + _sorted_params_string(params)
    return f"{signed}.{nonce}"


def _hmac_b64(auth_token: str, message: str) -> str:
    digest = hmac.new(auth_token.encode("utf-8"), message.encode("utf-8"), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode("ascii")


def compute_signature_v3(
    auth_token: str, method: str, url: str, params: Mapping[str, Any] | None, nonce: str
) -> str:
    """``X-Plivo-Signature-V3`` (or ``-Ma-V3`` with the main-account token)."""
    return _hmac_b64(auth_token, v3_string_to_sign(method, url, params, nonce))


def compute_signature_v2(auth_token: str, url: str, nonce: str) -> str:
    """``X-Plivo-Signature-V2``: the URL without query or fragment, then the nonce."""
    base, _ = _base_url(url)
    return _hmac_b64(auth_token, base + nonce)


def _matches(expected: str, header_value: str) -> bool:
    """Constant-time check of ``expected`` against any of the comma-separated values."""
    wanted = expected.encode("ascii")
    found = False
    for candidate in header_value.split(",")[:_MAX_SIGNATURES]:
        given = candidate.strip().encode("utf-8", errors="replace")
        # No short-circuit: every candidate is compared.
        found = hmac.compare_digest(wanted, given) | found
    return found


def _get_header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == name:
            return value if isinstance(value, str) else None
    return None


# --- callbacks --------------------------------------------------------------------------------


def _json_params(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _form_params(body: bytes) -> dict[str, list[str]] | None:
    try:
        text = body.decode("utf-8")
        return parse_qs(text, keep_blank_values=True, strict_parsing=False)
    except (ValueError, UnicodeDecodeError):
        return None


def _looks_like_json(request: CallbackRequest) -> bool:
    ctype = request.content_type or _get_header(request.headers, "content-type") or ""
    if "json" in ctype.lower():
        return True
    return request.body.lstrip()[:1] in (b"{", b"[")


class PlivoCallbackHandler(CallbackHandler):
    """Verifies and parses Plivo's 10DLC callbacks.

    ``auth_tokens``: every token that may sign (account, subaccount, main account during a
    rotation); any one verifying is enough.
    """

    name: ClassVar[str] = NAME
    signature_headers: ClassVar[frozenset[str]] = frozenset((*V3_HEADERS, *V2_HEADERS))

    def __init__(self, auth_tokens: list[str]) -> None:
        self.auth_tokens = [t for t in auth_tokens if t]

    # verify -----------------------------------------------------------------------------------

    def verify(self, request: CallbackRequest, now: float | None = None) -> Trust:
        try:
            return self._verify(request)
        except VerificationError:
            raise
        except Exception as exc:  # whatever the bytes, only VerificationError leaves
            raise VerificationError(f"plivo: cannot check signature: {type(exc).__name__}") from exc

    def nonce(self, request: CallbackRequest) -> str | None:
        """The nonce of the signature that decides (V3's when any V3 header is present)."""
        headers = request.headers
        if any(_get_header(headers, n) is not None for n in (*V3_HEADERS, V3_NONCE)):
            return _get_header(headers, V3_NONCE)
        return _get_header(headers, V2_NONCE)

    def _verify(self, request: CallbackRequest) -> Trust:
        """DESIGN §8: when any V3 header is present only V3 decides; V2 alone (it signs the
        URL and nonce, not the body) vouches only for the sender."""
        if not self.auth_tokens:
            raise VerificationError("plivo: no auth token configured")
        headers = request.headers
        v3 = [h for h in (_get_header(headers, n) for n in V3_HEADERS) if h]
        v2 = [h for h in (_get_header(headers, n) for n in V2_HEADERS) if h]
        v3_nonce = _get_header(headers, V3_NONCE)
        v2_nonce = _get_header(headers, V2_NONCE)
        if not v3 and not v2:
            raise VerificationError("plivo: no signature header")
        for value in (*v3, *v2, v3_nonce, v2_nonce):
            if value is not None and len(value) > _MAX_HEADER:
                raise VerificationError("plivo: signature header too long")
        url = request.url
        if not isinstance(url, str):
            raise VerificationError("plivo: no callback URL")
        if v3 or v3_nonce is not None:
            if not v3 or v3_nonce is None:
                raise VerificationError("plivo: incomplete V3 signature headers")
            method = "GET" if request.method.upper() == "GET" else "POST"
            for params, trust in self._param_candidates(request, method):
                for token in self.auth_tokens:
                    expected = compute_signature_v3(token, method, url, params, v3_nonce)
                    if any(_matches(expected, value) for value in v3):
                        return trust
            raise VerificationError("plivo: V3 signature does not match")
        if v2_nonce is None:
            raise VerificationError("plivo: V2 signature without its nonce")
        for token in self.auth_tokens:
            expected = compute_signature_v2(token, url, v2_nonce)
            if any(_matches(expected, value) for value in v2):
                return Trust.SENDER
        raise VerificationError("plivo: no signature matches")

    @staticmethod
    def _param_candidates(
        request: CallbackRequest, method: str
    ) -> list[tuple[dict[str, Any], Trust]]:
        """The params Plivo may have signed, and what a signature over them vouches for.

        GET, or POST without a body: the URL (with its query) is all there is, and V3 signs
        it. A body signed as if it had no params is not covered: the sender only.
        """
        if method == "GET" or not request.body.strip():
            return [({}, Trust.BODY)]
        if _looks_like_json(request):
            data = _json_params(request.body)
            # JSON semantics are UNCONFIRMED: Plivo's example signs the parsed object;
            # otherwise the body is unsigned (like V2).
            candidates = [(data, Trust.BODY)] if data else []
            return [*candidates, ({}, Trust.SENDER)]
        form = _form_params(request.body)
        return [(dict(form), Trust.BODY)] if form else [({}, Trust.SENDER)]

    # parse ------------------------------------------------------------------------------------

    def parse(self, request: CallbackRequest) -> CallbackEvent:
        try:
            return self._parse(request)
        except CallbackParseError:
            raise
        except Exception as exc:  # whatever the bytes, only CallbackParseError leaves
            raise CallbackParseError(f"plivo: cannot parse callback: {type(exc).__name__}") from exc

    def _fields(self, request: CallbackRequest) -> dict[str, Any]:
        if request.method.upper() == "GET":
            if request.query:
                return {str(k).lower(): v for k, v in request.query.items()}
            _, query = _base_url(request.url)
            return {k.lower(): v for k, v in parse_qs(query, keep_blank_values=True).items()}
        if not request.body.strip() and request.query:
            return {str(k).lower(): v for k, v in request.query.items()}
        if _looks_like_json(request):
            try:
                data = json.loads(request.body.decode("utf-8"))
            except (ValueError, RecursionError) as exc:
                raise CallbackParseError("plivo: callback body is not valid JSON") from exc
            if not isinstance(data, dict):
                raise CallbackParseError("plivo: callback JSON is not an object")
            return {str(k).lower(): v for k, v in data.items()}
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CallbackParseError("plivo: callback body is not UTF-8") from exc
        form = parse_qs(text, keep_blank_values=True)
        return {k.lower(): v for k, v in form.items()}

    @staticmethod
    def _scalar(fields: Mapping[str, Any], keys: tuple[str, ...], what: str) -> str | None:
        for key in keys:
            if key not in fields:
                continue
            value = fields[key]
            if isinstance(value, list):
                values = [v for v in value if v not in ("", None)]
                if not values:
                    continue
                if len(set(map(str, values))) > 1:
                    raise CallbackParseError(f"plivo: several values for {what}")
                value = values[0]
            if value is None or value == "":
                continue
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise CallbackParseError(f"plivo: {what} is not a string")
            text = str(value).strip()
            if len(text) > _MAX_FIELD:
                raise CallbackParseError(f"plivo: {what} too long")
            return text
        return None

    def _parse(self, request: CallbackRequest) -> CallbackEvent:
        fields = self._fields(request)
        nonce = _get_header(request.headers, V3_NONCE) or _get_header(request.headers, V2_NONCE)
        raw = request.body or urlparse(request.url).query.encode("utf-8", errors="replace")
        dedupe_key = hashlib.sha256((nonce or "").encode("utf-8", "replace") + raw).hexdigest()

        kind_raw = self._scalar(fields, KIND_KEYS, "event kind")
        kind: str | None = None
        if kind_raw is not None:
            normal = re.sub(r"[\s-]+", "_", kind_raw.lower())
            kind = KIND_ALIASES.get(normal)
            if kind is None:
                return CallbackEvent(
                    dedupe_key=dedupe_key,
                    relevant=False,
                    provider_status=kind_raw[:100],
                    ignore_reason=f"not a number linking callback: {kind_raw[:100]!r}",
                )
        status = self._scalar(fields, STATUS_KEYS, "status")
        number_raw = self._scalar(fields, NUMBER_KEYS, "number")
        if status is None:
            raise CallbackParseError("plivo: callback without a status")
        if number_raw is None:
            raise CallbackParseError("plivo: callback without a number")
        if "," in number_raw:
            raise CallbackParseError("plivo: callback names several numbers")
        try:
            number = to_e164(number_raw)
        except ValueError as exc:
            raise CallbackParseError(f"plivo: {exc}") from exc
        campaign_id = self._scalar(fields, CAMPAIGN_KEYS, "campaign id")
        reason = self._scalar(fields, REASON_KEYS, "reason")
        signal, direction = map_callback_status(kind, status)
        return CallbackEvent(
            dedupe_key=dedupe_key,
            relevant=True,
            number=number,
            campaign_id=campaign_id,
            provider_status=f"{kind}:{status}" if kind else status,
            signal=signal,
            direction=direction,
            provider_time=None,  # Plivo sends no timestamp
            reason=reason,
        )


# --- what the rest of dlcsync knows about Plivo ------------------------------------------


@dataclass(frozen=True)
class PlivoConfig:
    auth_id: str
    auth_token: str
    api_url: str


def plivo_config(settings: Settings) -> PlivoConfig | None:
    """Enabled when both ``PLIVO_AUTH_ID`` and ``PLIVO_AUTH_TOKEN`` are set."""
    token = settings.plivo_auth_token.get_secret_value() if settings.plivo_auth_token else ""
    if not settings.plivo_auth_id or not token:
        return None
    return PlivoConfig(settings.plivo_auth_id, token, settings.plivo_api_url)


def _client(config: PlivoConfig, wiring: ClientWiring) -> PlivoClient:
    http = make_plivo_http(
        config.api_url, config.auth_id, config.auth_token, transport=wiring.transport
    )
    return PlivoClient(
        http,
        config.auth_id,
        wiring.callback_url,
        limiter=wiring.limiter,
        page_size=wiring.page_size,
    )


def _callback_handler(settings: Settings) -> PlivoCallbackHandler:
    token = settings.plivo_auth_token.get_secret_value() if settings.plivo_auth_token else ""
    return PlivoCallbackHandler([token] if token else [])


SPEC: ProviderSpec[PlivoConfig] = ProviderSpec(
    name=NAME,
    env=("PLIVO_AUTH_ID", "PLIVO_AUTH_TOKEN"),
    config=plivo_config,
    rate_limit=lambda settings: settings.plivo_rate_limit_per_second,
    # REFERENCE §1.2: the maximum is UNCONFIRMED; Plivo's other list APIs cap at 20.
    page_size=20,
    kept_headers=frozenset(
        {"content-type", "user-agent", *V3_HEADERS, V3_NONCE, *V2_HEADERS, V2_NONCE}
    ),
    # We ask for POST, but the callback ``method`` is ours to choose: a GET is accepted too.
    accepts_get=True,
    callback_handler=_callback_handler,
    client=_client,
)
