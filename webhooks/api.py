"""The JSON API under ``/api/v1`` (DESIGN §4): the blueprint, what every operation shares,
and the links, history, campaign and event operations. spectree makes the OpenAPI document
(:mod:`webhooks.openapi`, which also gathers the operations of :mod:`webhooks.api_desired`).

One view function per operation: a Flask route, ``@api.validate`` with its answers
(:func:`answers`) and its operation id, its query and body models (:mod:`webhooks.schemas`) as
the annotated ``query``/``json`` parameters, and its docstring as summary and description.
spectree validates the query and body before the view runs and documents the same models in
``GET /api/v1/openapi.json``, so the document cannot drift from what the views accept. Path
values (provider, number, campaign id) are validated in the view with the path models.

Answers: 200/202 with the documented shape; 400 invalid input (with what was wrong),
401 missing or wrong bearer token (always, when ``API_TOKEN`` is unset), 404 unknown
number, 413/415 for an oversized or non-JSON body, 503 when the database is unavailable.
Every error body is ``{"error": {"code", "message"}}``; nothing answers 500.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import sqlalchemy as sa
import structlog
from flask import Blueprint, current_app, request
from pydantic import BaseModel, ValidationError
from spectree import Response, SecurityScheme, SecuritySchemeData, SpecTree
from spectree.models import SecureType
from sqlmodel import Session

from models import history, reports
from models.batch import Entry, NumberResult, link_numbers, unlink_numbers
from models.db import transaction
from models.links import ConcurrentChange, load, retry_concurrent
from models.numbers import InvalidNumber, to_e164_us
from models.statemachine import Source, State
from webhooks.auth import authorized
from webhooks.schemas import (
    AuditPage,
    AuditRow,
    CampaignPath,
    CampaignSummary,
    Counts,
    ErrorResponse,
    EventQuery,
    LinkListQuery,
    LinkOut,
    LinkPage,
    LinkPath,
    LinkQuery,
    LinkRequest,
    LinkResults,
    NumberResultOut,
    PageQuery,
)
from webhooks.services import error, services

T = TypeVar("T")
PREFIX = "/api/v1"
bp = Blueprint("api", __name__, url_prefix=PREFIX)
log = structlog.get_logger(__name__)

#: Ids are BIGINT at most; a larger cursor would overflow the database parameter.
MAX_ID = 2**63 - 1


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# --- checks around every view --------------------------------------------------------------


@bp.before_request
def _require_token() -> tuple[Any, int] | None:
    """Before anything else (a request without the token learns nothing about its input)."""
    if request.endpoint == "api.openapi":
        return None
    if not authorized(request.headers.get("Authorization"), services().settings.api_token):
        return error(401, "unauthorized", "missing or invalid bearer token")
    return None


def _problems(exc: ValidationError, where: str) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or where
        parts.append(f"{loc}: {err['msg']}")
    return f"invalid {where}: " + "; ".join(parts)


def _validated_input(
    _req: Any, _resp: Any, problem: Exception | None, _instance: Any, _adapter: Any
) -> None:
    """spectree's hook after it validated the query and body: our answers instead of its 422."""
    meta = api.get_function_metadata(current_app.view_functions[request.endpoint or ""])
    body_model = meta.json if meta is not None else None
    if body_model is not None and not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    if isinstance(problem, ValidationError):
        where = "body" if problem.title == body_model else "query"
        raise ApiError(400, f"invalid_{where}", _problems(problem, where))


def path_values(model: type[BaseModel], **values: str) -> Any:
    """Path values, validated like the query and body (spectree validates only those)."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ApiError(400, "invalid_path", _problems(exc, "path")) from None


api = SpecTree(
    "flask",
    mode="strict",  # the document lists the views validated here, nothing else of the app
    title="dlcsync API",
    version="1",
    description=(__doc__ or "").strip(),
    validation_error_status=400,
    validation_error_model=ErrorResponse,
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child,
    security_schemes=[
        SecurityScheme(
            name="bearerAuth", data=SecuritySchemeData(type=SecureType.HTTP, scheme="bearer")
        )
    ],
    security={"bearerAuth": []},
    before=_validated_input,
)

#: What any operation may answer besides its own result.
ERRORS = {
    400: "invalid request (the message says what)",
    401: "missing or wrong bearer token, or API_TOKEN unset",
    503: "database unavailable; retry",
}
NOT_FOUND = {404: "number not known to dlcsync"}


def answers(
    status: int, model: type[BaseModel], errors: Mapping[int, str] | None = None
) -> Response:
    """The documented answers of an operation: its result, :data:`ERRORS` and ``errors``."""
    described = {
        f"HTTP_{code}": (ErrorResponse, why) for code, why in {**ERRORS, **(errors or {})}.items()
    }
    return Response(**{f"HTTP_{status}": model}, **described)


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> tuple[Any, int]:
    return error(exc.status, exc.code, exc.message)


@bp.errorhandler(sa.exc.SQLAlchemyError)
def _database_error(exc: sa.exc.SQLAlchemyError) -> tuple[Any, int]:
    log.warning("api: database error", error=str(exc).splitlines()[0][:300])
    return error(503, "database_unavailable", "the database is unavailable; retry")


@bp.errorhandler(ConcurrentChange)
def _concurrent(exc: ConcurrentChange) -> tuple[Any, int]:
    return error(503, "conflict", "the link changed while the request was saved; retry")


# --- helpers -------------------------------------------------------------------------------


def configured(provider: str) -> str:
    if not services().specs[provider].enabled(services().settings):
        raise ApiError(400, "provider_not_configured", f"provider {provider} is not configured")
    return provider


def _number(raw: str) -> str:
    try:
        return to_e164_us(raw)
    except InvalidNumber as exc:
        raise ApiError(400, "invalid_number", f"{raw[:40]!r}: {exc}") from None


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The id after which the next page starts; 400 for anything we did not hand out."""
    if cursor is None:
        return 0
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    version, _, digits = raw.partition(b":")
    if version != b"v1" or not digits.isdigit() or int(digits) > MAX_ID:
        raise ApiError(400, "invalid_cursor", "cursor is not one this API returned")
    return int(digits)


def _page(rows: list[T], limit: int, key: Callable[[T], int | None]) -> tuple[list[T], str | None]:
    """Rows were fetched with ``limit + 1``: the extra one only says another page exists."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = key(rows[-1])
    assert last is not None
    return rows, encode_cursor(last)


def read_session() -> Session:
    return Session(services().engine, expire_on_commit=False)


# --- the operations ------------------------------------------------------------------------


@bp.post("/links", provide_automatic_options=False)
@api.validate(
    resp=answers(
        202,
        LinkResults,
        {413: "body larger than 256 KiB", 415: "body is not application/json"},
    ),
    operation_id="request_links",
)
def request_links(json: LinkRequest) -> tuple[LinkResults, int]:
    """Request links

    Ask dlcsync to link numbers to a campaign. One result per number, in input order:
    accepted, or rejected with a reason (e.g. not a valid US number). Idempotent: asking
    again for what is already requested or linked creates no new generation.
    """
    provider = configured(json.provider)
    entries = [Entry(raw, line=i) for i, raw in enumerate(json.numbers)]

    def record() -> list[NumberResult]:
        with transaction(services().engine) as session:
            return link_numbers(session, provider, json.campaign_id, entries, source=Source.API)

    out = [
        NumberResultOut(number=r.number, accepted=r.accepted, reason=r.reason)
        for r in retry_concurrent(record)
    ]
    return LinkResults(results=out), 202


@bp.delete("/links/<provider>/<number>", provide_automatic_options=False)
@api.validate(resp=answers(202, NumberResultOut, NOT_FOUND), operation_id="request_unlink")
def request_unlink(provider: str, number: str) -> tuple[NumberResultOut, int]:
    """Request unlink

    Ask dlcsync to unlink a number. A number already unlinked (or being unlinked) answers
    202 and changes nothing; a number dlcsync does not know answers 404.
    """
    path: LinkPath = path_values(LinkPath, provider=provider, number=number)
    provider = configured(path.provider)
    number = _number(path.number)

    def record() -> list[NumberResult]:
        with transaction(services().engine) as session:
            return unlink_numbers(session, provider, [Entry(number, line=0)], source=Source.API)

    (result,) = retry_concurrent(record)
    if not result.accepted:
        raise ApiError(404, "not_found", f"{number} is not managed by dlcsync at {provider}")
    return NumberResultOut(number=result.number, accepted=True, reason=result.reason), 202


@bp.get("/links", provide_automatic_options=False)
@api.validate(resp=answers(200, LinkPage), operation_id="list_links")
def list_links(query: LinkListQuery) -> LinkPage:
    """List links

    Links in a stable order; pass `next_cursor` back as `cursor` for the next page.
    """
    with read_session() as session:
        rows = reports.links_page(
            session,
            provider=query.provider,
            campaign_id=query.campaign_id,
            state=query.state.value if query.state else None,
            after_id=decode_cursor(query.cursor),
            limit=query.limit + 1,
        )
    items, cursor = _page(list(rows), query.limit, lambda link: link.id)
    return LinkPage(items=[LinkOut.of(link) for link in items], next_cursor=cursor)


@bp.get("/links/<provider>/<number>", provide_automatic_options=False)
@api.validate(
    resp=answers(
        200, LinkOut, {404: "number not known to dlcsync, or not yet requested at `as_of`"}
    ),
    operation_id="get_link",
)
def get_link(provider: str, number: str, query: LinkQuery) -> LinkOut:
    """Get link

    The current link, or with `as_of` the state dlcsync had recorded at that time (404
    before the first request). `as_of` must carry a timezone; naive times are refused
    with 400.
    """
    path: LinkPath = path_values(LinkPath, provider=provider, number=number)
    provider = configured(path.provider)
    number = _number(path.number)
    with read_session() as session:
        if query.as_of is not None:
            row = history.state_as_of(session, provider, number, query.as_of)
            if row is None:
                raise ApiError(
                    404, "not_found", f"{number} had no link at {query.as_of.isoformat()}"
                )
            return LinkOut.as_of(row)
        link = load(session, provider, number, lock=False)
    if link is None:
        raise ApiError(404, "not_found", f"{number} is not managed by dlcsync at {provider}")
    return LinkOut.of(link)


@bp.get("/links/<provider>/<number>/history", provide_automatic_options=False)
@api.validate(resp=answers(200, AuditPage, NOT_FOUND), operation_id="link_history")
def link_history(provider: str, number: str, query: PageQuery) -> AuditPage:
    """Link history

    The number's audit rows, oldest first.
    """
    path: LinkPath = path_values(LinkPath, provider=provider, number=number)
    provider = configured(path.provider)
    number = _number(path.number)
    after = decode_cursor(query.cursor)
    with read_session() as session:
        if load(session, provider, number, lock=False) is None:
            raise ApiError(404, "not_found", f"{number} is not managed by dlcsync at {provider}")
        rows = history.link_history(
            session, provider, number, after_id=after, limit=query.limit + 1
        )
    items, cursor = _page(list(rows), query.limit, lambda row: row.id)
    return AuditPage(items=[AuditRow.of(row) for row in items], next_cursor=cursor)


@bp.get("/campaigns/<provider>/<campaign_id>/summary", provide_automatic_options=False)
@api.validate(
    resp=answers(200, CampaignSummary, {404: "no such route (e.g. a `/` in the campaign id)"}),
    operation_id="campaign_summary",
)
def campaign_summary(provider: str, campaign_id: str) -> CampaignSummary:
    """Campaign summary

    How many of the campaign's numbers are in each state (every state listed).
    """
    path: CampaignPath = path_values(CampaignPath, provider=provider, campaign_id=campaign_id)
    provider = configured(path.provider)
    with read_session() as session:
        rows = reports.state_counts(session, provider=provider, campaign_id=path.campaign_id)
    found = {row.state: row.count for row in rows}
    counts = {state.value: found.get(state.value, 0) for state in State}
    return CampaignSummary(
        provider=provider,
        campaign_id=path.campaign_id,
        counts=Counts(**counts),
        total=sum(counts.values()),
    )


@bp.get("/events", provide_automatic_options=False)
@api.validate(resp=answers(200, AuditPage), operation_id="list_events")
def list_events(query: EventQuery) -> AuditPage:
    """List events

    Audit rows of all numbers in id order, recorded in [`since`, `until`), optionally only
    those moving to `state`, of one provider or campaign.
    """
    with read_session() as session:
        rows = history.events(
            session,
            since=query.since,
            until=query.until,
            state=query.state.value if query.state else None,
            provider=query.provider,
            campaign_id=query.campaign_id,
            after_id=decode_cursor(query.cursor),
            limit=query.limit + 1,
        )
    items, cursor = _page(list(rows), query.limit, lambda row: row.id)
    return AuditPage(items=[AuditRow.of(row) for row in items], next_cursor=cursor)
