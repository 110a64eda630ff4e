"""The stored form of a webhook delivery: written by the web view, read back by the worker.

One module, so the format has one definition. An inbox row holds

* ``body``: the bytes as received (audit and replay);
* ``headers``: the provider's kept headers, each signature replaced by its SHA-256 digest (whoever
  reads the inbox must not be able to replay a signature), plus the pseudo-headers
  ``:method``, ``:url`` (``PUBLIC_URL`` + path + query) and ``:query``;
* ``event``: the callback as the view verified and parsed it, and what its signature vouched
  for (:class:`~providers.base.Trust`).

Why the view keeps what it parsed, rather than extracting only a cheap dedupe key: the view
must parse the whole body anyway, to answer 400 to a malformed callback while the provider
still holds it, so the worker reuses that work instead of parsing again. The raw body stays
for audit; a row without ``event`` (stored before migration 0004) is parsed from it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import fields
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from models.statemachine import Direction, Signal
from models.tables import InboxItem

from .base import CallbackEvent, CallbackHandler, CallbackRequest, Trust

METHOD, URL, QUERY = ":method", ":url", ":query"
#: Key of the trust level inside the stored event.
TRUST = "trust"
_EVENT_FIELD_NAMES = tuple(f.name for f in fields(CallbackEvent))
_EVENT_FIELDS = frozenset(_EVENT_FIELD_NAMES)


def stored_headers(
    request: CallbackRequest, kept: Collection[str], signature_headers: Collection[str]
) -> dict[str, str]:
    """The headers to store: the kept ones (signatures as digests) and the pseudo-headers."""
    out = {}
    for name, value in request.headers.items():
        key = name.lower()
        if key in kept:
            out[key] = digest(value) if key in signature_headers else value
    query = request.url.partition("?")[2]
    return out | {METHOD: request.method, URL: request.url, QUERY: query}


def stored_request(item: InboxItem) -> CallbackRequest:
    """The request as received, from an inbox row (signature headers only as digests)."""
    headers = dict(item.headers)
    url = headers.pop(URL, "")
    query = headers.pop(QUERY, url.partition("?")[2])
    return CallbackRequest(
        method=headers.pop(METHOD, "POST"),
        url=url,
        headers=headers,
        body=item.body,
        content_type=headers.get("content-type", ""),
        query=dict(parse_qsl(query, keep_blank_values=True)),
    )


def event_record(event: CallbackEvent, trust: Trust) -> dict[str, Any]:
    """The parsed callback as JSON-ready values (the inbox ``event`` column)."""
    record = {k: v for k, v in _event_values(event) if v is not None}
    if event.provider_time is not None:
        record["provider_time"] = event.provider_time.isoformat()
    return record | {TRUST: trust.value}


def stored_event(item: InboxItem, handler: CallbackHandler) -> tuple[CallbackEvent, Trust]:
    """The callback of an inbox row, and what its signature vouched for."""
    if item.event is None:  # stored before 0005: verified with V3 fallback rules; reparse
        return handler.parse(stored_request(item)), Trust.BODY
    record = dict(item.event)
    trust = Trust(record.pop(TRUST, Trust.BODY.value))
    values = {k: v for k, v in record.items() if k in _EVENT_FIELDS}
    if "signal" in values:
        values["signal"] = Signal(values["signal"])
    if "direction" in values:
        values["direction"] = Direction(values["direction"])
    if "provider_time" in values:
        values["provider_time"] = datetime.fromisoformat(values["provider_time"])
    return CallbackEvent(**values), trust


def digest(value: str | bytes) -> str:
    data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
    return "sha256:" + hashlib.sha256(data).hexdigest()


def request_digest(request: CallbackRequest) -> str:
    """What a nonce signed, for the replay check: method, URL and body."""
    head = f"{request.method.upper()} {request.url}\n".encode("utf-8", "surrogatepass")
    return hashlib.sha256(head + request.body).hexdigest()


def unstorable(event: CallbackEvent) -> str | None:
    """The first field of ``event`` no database can store (NUL, a lone surrogate), if any.

    PostgreSQL refuses NUL in text and every driver refuses to encode a lone surrogate: such
    a callback can never be stored, so it is malformed (400), never "retry later" (503).
    """
    for name, value in _event_values(event):
        if isinstance(value, str) and not storable_text(value):
            return name
    return None


def _event_values(event: CallbackEvent) -> list[tuple[str, Any]]:
    """The event's fields, shallow: its values are immutable (strings, enums, a datetime, a
    tuple of strings), so ``dataclasses.asdict``'s deep copy would only cost time (it was a
    tenth of the webhook's Python time, twice per request)."""
    return [(name, getattr(event, name)) for name in _EVENT_FIELD_NAMES]


def storable_text(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
