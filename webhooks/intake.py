"""``POST /webhooks/<provider>``: verify, parse, store in the inbox, commit, enqueue, 200.

The view is thin: the provider's handler verifies and parses; the inbox stores the request
and what was parsed (:mod:`providers.delivery`); a worker applies. The answer codes are the
contract of DESIGN §4: 401 also for a signature nonce replayed over another request, 400
also for text no database can store (NUL, a lone surrogate), never 503 for either.
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa
import structlog
from flask import Blueprint, Response, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from common import crashpoints
from common.metrics import WEBHOOK_OUTCOME_BY_STATUS, count_delivery
from models.db import is_postgres
from models.inbox import remember_nonce, store_delivery
from providers.base import CallbackParseError, CallbackRequest, VerificationError
from providers.delivery import (
    event_record,
    request_digest,
    storable_text,
    stored_headers,
    unstorable,
)
from webhooks.services import MAX_BODY_BYTES, error, services

bp = Blueprint("intake", __name__)
log = structlog.get_logger(__name__)


def _callback_request(public_url: str) -> CallbackRequest:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise RequestEntityTooLarge()
    body = request.get_data(cache=True)  # raises 413 past MAX_CONTENT_LENGTH
    query = request.query_string.decode("latin-1")
    url = public_url + request.path + (f"?{query}" if query else "")
    headers = {k.lower(): v for k, v in request.headers.items()}
    return CallbackRequest(
        method=request.method,
        url=url,
        headers=headers,
        body=body,
        content_type=headers.get("content-type", ""),
        query=request.args.to_dict(flat=True),
    )


@functools.lru_cache(maxsize=8)
def _statement_engine(engine: sa.Engine) -> sa.Engine:
    """On PostgreSQL, ``engine`` in autocommit: a delivery is stored by one INSERT (or one
    UPDATE of a duplicate), each atomic and durable on its own, so the BEGIN and COMMIT round
    trips buy nothing (two of three per webhook). A nonce is recorded before the delivery:
    if storing then fails, the provider's retry is the same request and is accepted. SQLite
    keeps its transactions (its BEGIN IMMEDIATE is what serialises the processes' writers)."""
    if not is_postgres(engine):
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


@bp.after_request
def _count_delivery(response: Response) -> Response:
    """Count every answer of a known provider's endpoint, errors raised past the view too."""
    provider = (request.view_args or {}).get("provider")
    if provider in services().handlers:
        if response.status_code == 200:
            outcome = g.get("webhook_outcome", "accepted")
        else:
            outcome = WEBHOOK_OUTCOME_BY_STATUS.get(response.status_code, "")
        if outcome:
            count_delivery(provider, outcome)
    return response


@bp.route("/webhooks/<provider>", methods=["POST", "GET"])
def receive(provider: str) -> tuple[Any, int]:
    svc = services()
    handler = svc.handlers.get(provider)
    if handler is None:
        return error(404, "unknown_provider", f"no webhook endpoint for {provider!r}")
    if request.method == "GET" and not svc.specs[provider].accepts_get:
        return error(405, "method_not_allowed", "use POST")
    cb = _callback_request(svc.settings.public_url)
    try:
        trust = handler.verify(cb)
    except VerificationError as exc:
        return error(401, "bad_signature", str(exc) or "signature verification failed")
    try:
        event = handler.parse(cb)
    except CallbackParseError as exc:
        return error(400, "malformed", str(exc) or "the callback could not be understood")
    nonce = handler.nonce(cb)
    bad_field = unstorable(event) or (
        "nonce" if nonce is not None and not storable_text(nonce) else None
    )
    if bad_field is not None:
        return error(400, "malformed", f"{bad_field} holds NUL or a lone surrogate")

    kept = svc.specs[provider].kept_headers
    headers = stored_headers(cb, kept, handler.signature_headers)
    try:
        # A Core connection, not a Session: the ORM's execution path buys nothing here.
        with _statement_engine(svc.engine).begin() as conn:
            if nonce is not None and not remember_nonce(conn, provider, nonce, request_digest(cb)):
                stored = None
            else:
                stored = store_delivery(
                    conn,
                    provider,
                    event.dedupe_key,
                    cb.body,
                    headers,
                    event=event_record(event, trust),
                )
    except sa.exc.SQLAlchemyError as exc:
        log.warning("inbox unavailable", provider=provider, error=str(exc).splitlines()[0])
        return error(503, "unavailable", "the delivery could not be stored; retry")
    if stored is None:
        log.warning("signature nonce replayed with another request", provider=provider)
        return error(401, "replayed_nonce", "this signature's nonce came with another request")

    crashpoints.reach("inbox.after_commit")
    if stored.new:
        svc.publisher.submit(stored.id)
    g.webhook_outcome = "accepted" if stored.new else "duplicate"
    return {"status": "accepted", "inbox_id": stored.id, "duplicate": not stored.new}, 200
