"""HTTP plumbing shared by the provider adapters.

One pooled ``httpx.Client`` per provider (:func:`make_http_client`); one function that sends a
request through the account's rate limiter and turns every transport failure into our error
family (:func:`perform`); one that classifies a non-2xx answer (:func:`raise_for_status`); and
safe JSON decoding (:func:`decode_json`). Nothing here retries: the worker retries with durable
backoff, so one adapter call is one HTTP request.

A provider's answer is hostile input too: the body is streamed and abandoned past
:data:`MAX_RESPONSE_BYTES` (decoded, so a compressed bomb is stopped as well) with
:class:`MalformedResponse`, and one request has :data:`REQUEST_DEADLINE` seconds in all — a
server that drips a byte just inside each per-read timeout is cut off with a
:class:`TemporaryProviderError`. The deadline is checked between body chunks and caps every
per-phase timeout; before the headers are complete, each read is still bounded by the read
timeout and the HTTP parser's header size limit (100 KiB).

Retry hints: ``retry-after-ms`` (the Telnyx SDK's header), ``Retry-After`` (seconds or an
HTTP-date) and Telnyx's ``x-ratelimit-reset`` (seconds until the window resets; a value that
looks like an epoch timestamp is converted). Every hint is capped at :data:`MAX_RETRY_AFTER` so a
misbehaving server cannot stall the limiter for days.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from common.metrics import PROVIDER_LATENCY, PROVIDER_REQUESTS, status_class

from .base import (
    DEFAULT_TIMEOUT,
    CredentialsRejected,
    MalformedResponse,
    NotLinked,
    PermanentProviderError,
    RateLimiter,
    TemporaryProviderError,
)

__all__ = [
    "MAX_RECORDS_PER_PAGE",
    "MAX_RESPONSE_BYTES",
    "MAX_RETRY_AFTER",
    "RATE_LIMITED_DEFAULT_PENALTY",
    "REQUEST_DEADLINE",
    "TEMPORARY_STATUSES",
    "check_page_size",
    "decode_json",
    "endpoint_name",
    "error_json",
    "error_text",
    "make_http_client",
    "malformed",
    "parse_retry_after",
    "perform",
    "raise_for_status",
    "ratelimit_reset",
    "retry_hint",
]

#: Statuses worth retrying (the Telnyx SDK's policy, REFERENCE §6); plus every 5xx.
TEMPORARY_STATUSES = frozenset({408, 409, 429})
#: Upper bound for any provider-supplied wait, in seconds.
MAX_RETRY_AFTER = 3600.0
#: Penalty when a 429 carries no hint at all.
RATE_LIMITED_DEFAULT_PENALTY = 1.0
#: Largest response body read from a provider (decoded). A Telnyx page of 250 records or a
#: Plivo page of numbers is well under 1 MiB; past this the answer is not one we asked for.
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
#: Most records a listing page may hold, whatever page size was asked for.
MAX_RECORDS_PER_PAGE = 1000
#: Longest one request may take in all (connect, send, wait, read), in seconds.
REQUEST_DEADLINE = 90.0
#: How much of an error body goes into an exception message.
_MAX_ERROR_TEXT = 500
#: Methods after whose read timeout the request may have been carried out.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})


def make_http_client(
    base_url: str,
    *,
    auth: httpx.Auth | tuple[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: httpx.Timeout | float | None = None,
    max_connections: int = 20,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """A pooled client with explicit timeouts; ``transport`` is for tests (MockTransport)."""
    all_headers = {"Accept": "application/json", "User-Agent": "dlcsync/0.1"}
    all_headers.update(headers or {})
    return httpx.Client(
        base_url=base_url,
        auth=auth,
        headers=all_headers,
        timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        follow_redirects=False,
        transport=transport,
    )


def _finite_seconds(value: float) -> float | None:
    if math.isnan(value) or math.isinf(value):
        return None
    return min(max(value, 0.0), MAX_RETRY_AFTER)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # httpx.Headers is case-insensitive already; plain dicts (tests) may not be.
    value = headers.get(name)
    if value is None:
        lname = name.lower()
        for key, val in headers.items():
            if key.lower() == lname:
                return val
    return value


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP-date)."""
    raw_ms = _header(headers, "retry-after-ms")
    if raw_ms is not None:
        try:
            seconds = _finite_seconds(float(raw_ms.strip()) / 1000.0)
        except ValueError:
            seconds = None
        if seconds is not None:
            return seconds
    raw = _header(headers, "retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        return _finite_seconds(float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:  # older Pythons return None instead of raising
        return None
    try:
        delta = when.timestamp() - (time.time() if now is None else now)
    except (OverflowError, OSError, ValueError):
        return None
    return _finite_seconds(delta)


def ratelimit_reset(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Telnyx ``x-ratelimit-reset``: seconds until the window resets (epoch values accepted)."""
    raw = _header(headers, "x-ratelimit-reset")
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    if value > 1_000_000_000:  # an epoch timestamp, not a number of seconds
        value -= time.time() if now is None else now
    return _finite_seconds(value)


def _remaining_exhausted(headers: Mapping[str, str]) -> bool:
    raw = _header(headers, "x-ratelimit-remaining")
    if raw is None:
        return False
    try:
        return float(raw.strip()) <= 0
    except ValueError:
        return False


def retry_hint(response: httpx.Response, now: float | None = None) -> float | None:
    """The wait the provider asks for, if any (used for ``retry_after`` and the limiter)."""
    hint = parse_retry_after(response.headers, now)
    if hint is not None:
        return hint
    if response.status_code == 429 or _remaining_exhausted(response.headers):
        return ratelimit_reset(response.headers, now)
    return None


def perform_checked(
    http: httpx.Client,
    limiter: RateLimiter,
    method: str,
    url: str,
    *,
    provider: str,
    error_of: Callable[[httpx.Response], tuple[str | None, str | None]],
    number_scoped: bool,
    not_linked_text: re.Pattern[str] | None = None,
    json_body: Any = None,
    params: Mapping[str, str | int] | None = None,
    deadline: float = REQUEST_DEADLINE,
) -> httpx.Response:
    """:func:`perform`, then raise the provider error a non-2xx answer means.

    ``error_of`` reads the provider's (message, code) from an error body; a 404 on a
    single-number call, or a message matching ``not_linked_text``, means NotLinked.
    """
    response = perform(
        http,
        limiter,
        method,
        url,
        provider=provider,
        json_body=json_body,
        params=params,
        deadline=deadline,
    )
    if not response.is_success:
        message, code = error_of(response)
        raise_for_status(
            response,
            provider=provider,
            message=message,
            code=code,
            not_found_is_not_linked=number_scoped,
            not_linked=number_scoped
            and not_linked_text is not None
            and message is not None
            and not_linked_text.search(message) is not None,
        )
    return response


def perform(
    http: httpx.Client,
    limiter: RateLimiter,
    method: str,
    url: str,
    *,
    provider: str,
    json_body: Any = None,
    params: Mapping[str, str | int] | None = None,
    deadline: float = REQUEST_DEADLINE,
) -> httpx.Response:
    """Send one request through the limiter. Transport failures become provider errors.

    The response is returned whatever its status; :func:`raise_for_status` classifies it.
    """
    what = f"{provider} {method} {url}"
    limiter.acquire()
    try:
        response = _measured(
            http, method, url, provider, json_body=json_body, params=params, deadline=deadline
        )
    except _TooLarge as exc:
        raise MalformedResponse(
            f"{what}: response body too large ({exc}); not read",
            timed_out=method.upper() not in _IDEMPOTENT,
        ) from exc
    except httpx.TimeoutException as exc:
        # A read/write timeout after the request left us: it may have been carried out.
        maybe_done = method.upper() not in _IDEMPOTENT and isinstance(
            exc, httpx.ReadTimeout | httpx.WriteTimeout
        )
        detail = f": {exc}" if isinstance(exc, _DeadlinePassed) else ""
        raise TemporaryProviderError(
            f"{what}: timed out ({type(exc).__name__}{detail})", timed_out=maybe_done
        ) from exc
    except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
        # The connection broke after sending: same uncertainty as a read timeout.
        raise TemporaryProviderError(
            f"{what}: connection lost ({type(exc).__name__}: {exc})",
            timed_out=method.upper() not in _IDEMPOTENT,
        ) from exc
    except httpx.TransportError as exc:
        raise TemporaryProviderError(f"{what}: {type(exc).__name__}: {exc}") from exc
    except httpx.DecodingError as exc:
        raise MalformedResponse(f"{what}: undecodable response body: {exc}") from exc
    except httpx.HTTPError as exc:
        raise TemporaryProviderError(f"{what}: {type(exc).__name__}: {exc}") from exc
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise PermanentProviderError(f"{what}: cannot build the request: {exc}") from exc
    hint = retry_hint(response)
    if hint is not None and hint > 0:
        limiter.penalize(hint)
    elif response.status_code == 429:
        limiter.penalize(RATE_LIMITED_DEFAULT_PENALTY)
    return response


#: The fixed words of the provider API paths we call; every other segment (numbers, account
#: and campaign ids) becomes ``{id}`` in an endpoint name. A list, not a pattern: a campaign
#: id can look like a word (``acme``, ``Spring``), and a label must never carry one (customer
#: data, unbounded). A path word missing here merely shows as ``{id}``.
PATH_WORDS = frozenset(
    {
        "v1",
        "v2",
        "10dlc",
        # Plivo: /v1/Account/{auth_id}/10dlc/Campaign/{campaign_id}/Number/{number}/
        "Account",
        "Campaign",
        "Number",
        # Telnyx: /v2/10dlc/phone_number_campaigns/{number}, /v2/10dlc/campaign/{id},
        # /v2/10dlc/partner_campaigns/{tcr_id}, the legacy /v2/10dlc/phoneNumberCampaign
        "phone_number_campaigns",
        "phoneNumberCampaign",
        "campaign",
        "partner_campaigns",
    }
)


def endpoint_name(method: str, url: str) -> str:
    """A low-cardinality name for a request: ``GET /v1/Account/{id}/10dlc/Campaign/{id}/``.

    Never the URL itself: numbers, accounts and campaigns would make one series each.
    """
    path = url.split("?", 1)[0]
    if "://" in path:
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    segments = [s if not s or s in PATH_WORDS else "{id}" for s in path.split("/")]
    return f"{method.upper()} {'/'.join(segments)}"


def _measured(
    http: httpx.Client,
    method: str,
    url: str,
    provider: str,
    *,
    json_body: Any,
    params: Mapping[str, str | int] | None,
    deadline: float,
) -> httpx.Response:
    """One request, read by :func:`_read_bounded`, counted and timed by provider, endpoint and
    result (/metrics)."""
    endpoint = endpoint_name(method, url)
    result = "error"
    started = time.perf_counter()
    try:
        response = _read_bounded(
            http, method, url, json_body=json_body, params=params, deadline=deadline
        )
        result = status_class(response.status_code)
        return response
    except httpx.TimeoutException:
        result = "timeout"
        raise
    finally:
        PROVIDER_LATENCY.labels(provider, endpoint).observe(time.perf_counter() - started)
        PROVIDER_REQUESTS.labels(provider, endpoint, result).inc()


class _TooLarge(Exception):
    pass


class _DeadlinePassed(httpx.ReadTimeout):
    """The request as a whole took longer than its deadline (each read was in time)."""


def _read_bounded(
    http: httpx.Client,
    method: str,
    url: str,
    *,
    json_body: Any,
    params: Mapping[str, str | int] | None,
    deadline: float,
) -> httpx.Response:
    """Send, then stream the body: at most :data:`MAX_RESPONSE_BYTES`, within ``deadline``
    seconds in all. Raises :class:`_TooLarge` or :class:`_DeadlinePassed`."""
    ends_at = time.monotonic() + deadline
    timeout = _capped_timeout(http.timeout, deadline)
    request = http.build_request(method, url, json=json_body, params=params, timeout=timeout)
    response = http.send(request, stream=True)
    try:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
            raise _TooLarge(f"declared {declared} bytes")
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > MAX_RESPONSE_BYTES:
                raise _TooLarge(f"more than {MAX_RESPONSE_BYTES} bytes")
            if time.monotonic() > ends_at:
                raise _DeadlinePassed(f"no complete answer within {deadline:g}s", request=request)
    finally:
        response.close()
    # The body is already decoded: drop the headers that describe the wire encoding.
    headers = [
        (k, v)
        for k, v in response.headers.multi_items()
        if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=bytes(body),
        request=request,
        extensions={k: v for k, v in response.extensions.items() if k != "network_stream"},
    )


def _capped_timeout(timeout: httpx.Timeout, cap: float) -> httpx.Timeout:
    """Every phase's timeout, none longer than ``cap`` (a phase without one gets ``cap``)."""

    def capped(value: float | None) -> float:
        return cap if value is None else min(value, cap)

    return httpx.Timeout(
        connect=capped(timeout.connect),
        read=capped(timeout.read),
        write=capped(timeout.write),
        pool=capped(timeout.pool),
    )


def error_text(response: httpx.Response) -> str:
    """A short, printable excerpt of a response body (for messages)."""
    try:
        text = response.content.decode("utf-8", errors="replace")
    except httpx.HTTPError:
        return ""
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text[:_MAX_ERROR_TEXT]


def error_json(response: httpx.Response) -> Any:
    """The error body as JSON, or ``None`` when it is not JSON (HTML 502 pages...)."""
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError, httpx.HTTPError):
        return None


def _describe(response: httpx.Response) -> tuple[str, str]:
    """Method and path of the request behind a response (``?`` when it has none)."""
    try:
        request = response.request
    except RuntimeError:
        return "?", "?"
    return request.method, request.url.path


def raise_for_status(
    response: httpx.Response,
    *,
    provider: str,
    message: str | None,
    code: str | None,
    not_found_is_not_linked: bool,
    not_linked: bool = False,
) -> None:
    """Classify a non-2xx answer; returns quietly on 2xx.

    ``message``/``code`` come from the provider-specific error body; ``not_linked`` lets the
    caller flag a provider's own "not linked" error (Plivo answers 400 with text).
    """
    status = response.status_code
    if 200 <= status < 300:
        return
    method, path = _describe(response)
    detail = message or error_text(response) or response.reason_phrase
    text = f"{provider} {method} {path}: HTTP {status}: {detail}"
    if status in TEMPORARY_STATUSES or status >= 500:
        raise TemporaryProviderError(
            text, status=status, code=code, retry_after=retry_hint(response)
        )
    if status in (401, 403):
        raise CredentialsRejected(text, status=status, code=code)
    if not_linked or (status == 404 and not_found_is_not_linked):
        raise NotLinked(text, status=status, code=code)
    raise PermanentProviderError(text, status=status, code=code)


def decode_json(response: httpx.Response, *, provider: str, allow_empty: bool = False) -> Any:
    """The response body as JSON, or :class:`MalformedResponse` (never ValueError)."""
    method, path = _describe(response)
    what = f"{provider} {method} {path}"
    content = response.content
    if not content.strip():
        if allow_empty:
            return None
        raise MalformedResponse(
            f"{what}: empty response body (HTTP {response.status_code})",
            status=response.status_code,
            timed_out=method not in _IDEMPOTENT,
        )
    try:
        return json.loads(content)
    except (ValueError, RecursionError) as exc:
        raise MalformedResponse(
            f"{what}: response is not JSON (HTTP {response.status_code}): {error_text(response)}",
            status=response.status_code,
            timed_out=method not in _IDEMPOTENT,
        ) from exc


def check_page_size(
    response: httpx.Response, provider: str, records: list[Any], *, asked: int
) -> list[Any]:
    """The records of one listing page, or :class:`MalformedResponse` when the page holds more
    than was asked for (or than :data:`MAX_RECORDS_PER_PAGE`): a provider may send fewer
    records per page than asked, never more, and each record costs work downstream."""
    limit = min(asked, MAX_RECORDS_PER_PAGE)
    if len(records) > limit:
        raise malformed(response, provider, f"{len(records)} records on a page of at most {limit}")
    return records


def malformed(response: httpx.Response, provider: str, problem: str) -> MalformedResponse:
    """An error for a 2xx answer that lacks what we need (after a mutating request it may
    still have been carried out, hence ``timed_out`` for non-GET)."""
    method, path = _describe(response)
    return MalformedResponse(
        f"{provider} {method} {path}: unexpected response: {problem}",
        status=response.status_code,
        timed_out=method not in _IDEMPOTENT,
    )
