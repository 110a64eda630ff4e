"""The JSON API under ``/api/v1`` (DESIGN §4) and its OpenAPI document.

Each view is declared once with :func:`operation`: its method, rule, the pydantic models of
its path, query and body (:mod:`webhooks.schemas`) and its answers. The declaration both
validates the request before the view runs and describes the operation in
``GET /api/v1/openapi.json``, so the document cannot drift from what the views accept.

Answers: 200/202 with the documented shape; 400 invalid input (with what was wrong),
401 missing or wrong bearer token (always, when ``API_TOKEN`` is unset), 404 unknown
number, 413/415 for an oversized or non-JSON body, 503 when the database is unavailable.
Every error body is ``{"error": {"code", "message"}}``; nothing answers 500.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
import structlog
from flask import Blueprint, request
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema
from sqlmodel import Session

from models import history, summary
from models.batch import Entry, link_numbers, unlink_numbers
from models.db import transaction
from models.links import ConcurrentChange, load
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

#: A request that lost a race with the worker is retried this many times before a 503.
ATTEMPTS = 3
#: Ids are BIGINT at most; a larger cursor would overflow the database parameter.
MAX_ID = 2**63 - 1


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# --- declaring operations ------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    method: str
    rule: str
    summary: str
    ok: tuple[int, type[BaseModel]]
    path: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    public: bool = False
    description: str = ""
    errors: Mapping[int, str] = field(default_factory=dict)

    @property
    def summary_id(self) -> str:
        return self.summary.lower().replace(" ", "_").replace("'", "")


#: Every operation of the API, in the order the document lists them.
OPERATIONS: list[Operation] = []

ERRORS = {
    400: "invalid request (the message says what)",
    401: "missing or wrong bearer token, or API_TOKEN unset",
    503: "database unavailable; retry",
}


def operation(
    method: str,
    rule: str,
    summary: str,
    ok: tuple[int, type[BaseModel]],
    *,
    path: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    body: type[BaseModel] | None = None,
    public: bool = False,
    description: str = "",
    errors: Mapping[int, str] | None = None,
) -> Callable[[Callable[..., BaseModel]], Callable[..., BaseModel]]:
    """Register a view under ``rule`` that gets validated ``path``/``query``/``body`` models
    as keyword arguments and returns the ``ok`` model."""
    op = Operation(
        method, rule, summary, ok, path, query, body, public, description, dict(errors or {})
    )
    OPERATIONS.append(op)

    def register(view: Callable[..., BaseModel]) -> Callable[..., BaseModel]:
        @functools.wraps(view)
        def endpoint(**path_args: str) -> tuple[Any, int]:
            if not op.public and not authorized(
                request.headers.get("Authorization"), services().settings.api_token
            ):
                raise ApiError(401, "unauthorized", "missing or invalid bearer token")
            kwargs: dict[str, BaseModel] = {}
            if op.path is not None:
                kwargs["path"] = _validated(op.path, path_args, "path")
            if op.query is not None:
                kwargs["query"] = _validated(op.query, request.args.to_dict(), "query")
            if op.body is not None:
                kwargs["body"] = _json_body(op.body)
            result = view(**kwargs)
            return result.model_dump(mode="json"), op.ok[0]

        bp.add_url_rule(
            rule, op.summary_id, endpoint, methods=[method], provide_automatic_options=False
        )
        return view

    return register


def _problems(exc: ValidationError, where: str) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or where
        parts.append(f"{loc}: {err['msg']}")
    return f"invalid {where}: " + "; ".join(parts)


def _validated(model: type[BaseModel], data: Mapping[str, Any], where: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, f"invalid_{where}", _problems(exc, where)) from None


def _json_body(model: type[BaseModel]) -> BaseModel:
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    raw = request.get_data(cache=True)  # 413 past MAX_CONTENT_LENGTH
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise ApiError(400, "invalid_body", _problems(exc, "body")) from None


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


def _configured(provider: str) -> str:
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


def _read_session() -> Session:
    return Session(services().engine, expire_on_commit=False)


# --- the operations ------------------------------------------------------------------------

NOT_FOUND = {404: "number not known to dlcsync"}


@operation(
    "POST",
    "/links",
    "Request links",
    (202, LinkResults),
    body=LinkRequest,
    description=(
        "Ask dlcsync to link numbers to a campaign. One result per number, in input order: "
        "accepted, or rejected with a reason (e.g. not a valid US number). Idempotent: "
        "asking again for what is already requested or linked creates no new generation."
    ),
    errors={413: "body larger than 256 KiB", 415: "body is not application/json"},
)
def request_links(body: LinkRequest) -> LinkResults:
    provider = _configured(body.provider)
    entries = [Entry(raw, line=i) for i, raw in enumerate(body.numbers)]
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with transaction(services().engine) as session:
                results = link_numbers(
                    session, provider, body.campaign_id, entries, source=Source.API
                )
            break
        except ConcurrentChange:
            if attempt == ATTEMPTS:
                raise
    return LinkResults(
        results=[
            NumberResultOut(number=r.number, accepted=r.accepted, reason=r.reason) for r in results
        ]
    )


@operation(
    "DELETE",
    "/links/<provider>/<number>",
    "Request unlink",
    (202, NumberResultOut),
    path=LinkPath,
    description=(
        "Ask dlcsync to unlink a number. A number already unlinked (or being unlinked) "
        "answers 202 and changes nothing; a number dlcsync does not know answers 404."
    ),
    errors=NOT_FOUND,
)
def request_unlink(path: LinkPath) -> NumberResultOut:
    provider = _configured(path.provider)
    number = _number(path.number)
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with transaction(services().engine) as session:
                (result,) = unlink_numbers(
                    session, provider, [Entry(number, line=0)], source=Source.API
                )
            break
        except ConcurrentChange:
            if attempt == ATTEMPTS:
                raise
    if not result.accepted:
        raise ApiError(404, "not_found", f"{number} is not managed by dlcsync at {provider}")
    return NumberResultOut(number=result.number, accepted=True, reason=result.reason)


@operation(
    "GET",
    "/links",
    "List links",
    (200, LinkPage),
    query=LinkListQuery,
    description="Links in a stable order; pass `next_cursor` back as `cursor` for the next page.",
)
def list_links(query: LinkListQuery) -> LinkPage:
    with _read_session() as session:
        rows = summary.list_links(
            session,
            provider=query.provider,
            campaign_id=query.campaign_id,
            state=query.state.value if query.state else None,
            after_id=decode_cursor(query.cursor),
            limit=query.limit + 1,
        )
    items, cursor = _page(list(rows), query.limit, lambda link: link.id)
    return LinkPage(items=[LinkOut.of(link) for link in items], next_cursor=cursor)


@operation(
    "GET",
    "/links/<provider>/<number>",
    "Get link",
    (200, LinkOut),
    path=LinkPath,
    query=LinkQuery,
    description=(
        "The current link, or with `as_of` the state dlcsync had recorded at that time "
        "(404 before the first request). `as_of` must carry a timezone; naive times are "
        "refused with 400."
    ),
    errors={404: "number not known to dlcsync, or not yet requested at `as_of`"},
)
def get_link(path: LinkPath, query: LinkQuery) -> LinkOut:
    provider = _configured(path.provider)
    number = _number(path.number)
    with _read_session() as session:
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


@operation(
    "GET",
    "/links/<provider>/<number>/history",
    "Link history",
    (200, AuditPage),
    path=LinkPath,
    query=PageQuery,
    description="The number's audit rows, oldest first.",
    errors=NOT_FOUND,
)
def link_history(path: LinkPath, query: PageQuery) -> AuditPage:
    provider = _configured(path.provider)
    number = _number(path.number)
    after = decode_cursor(query.cursor)
    with _read_session() as session:
        if load(session, provider, number, lock=False) is None:
            raise ApiError(404, "not_found", f"{number} is not managed by dlcsync at {provider}")
        rows = history.link_history(
            session, provider, number, after_id=after, limit=query.limit + 1
        )
    items, cursor = _page(list(rows), query.limit, lambda row: row.id)
    return AuditPage(items=[AuditRow.of(row) for row in items], next_cursor=cursor)


@operation(
    "GET",
    "/campaigns/<provider>/<campaign_id>/summary",
    "Campaign summary",
    (200, CampaignSummary),
    path=CampaignPath,
    description="How many of the campaign's numbers are in each state (every state listed).",
    errors={404: "no such route (e.g. a `/` in the campaign id)"},
)
def campaign_summary(path: CampaignPath) -> CampaignSummary:
    provider = _configured(path.provider)
    with _read_session() as session:
        counts = summary.campaign_counts(session, provider, path.campaign_id)
    return CampaignSummary(
        provider=provider,
        campaign_id=path.campaign_id,
        counts=Counts(**{state.value: counts[state] for state in State}),
        total=sum(counts.values()),
    )


@operation(
    "GET",
    "/events",
    "List events",
    (200, AuditPage),
    query=EventQuery,
    description=(
        "Audit rows of all numbers in id order, recorded in [`since`, `until`), optionally "
        "only those moving to `state`, of one provider or campaign."
    ),
)
def list_events(query: EventQuery) -> AuditPage:
    with _read_session() as session:
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


# --- the document --------------------------------------------------------------------------


@bp.get("/openapi.json", provide_automatic_options=False)
def openapi() -> tuple[Any, int]:
    return openapi_document(), 200


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of :data:`OPERATIONS`, built from their pydantic models."""
    inputs = {m for op in OPERATIONS for m in (op.path, op.query, op.body) if m is not None}
    outputs = {op.ok[1] for op in OPERATIONS} | {ErrorResponse}
    _, top = models_json_schema(
        [(m, "validation") for m in sorted(inputs, key=lambda m: m.__name__)]
        + [(m, "serialization") for m in sorted(outputs, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    defs: dict[str, Any] = top.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        oa_path = PREFIX + op.rule.replace("<", "{").replace(">", "}")
        parameters = []
        if op.path is not None:
            parameters += _parameters(defs[op.path.__name__], "path")
        if op.query is not None:
            parameters += _parameters(defs[op.query.__name__], "query")
        spec: dict[str, Any] = {
            "operationId": op.summary_id,
            "summary": op.summary,
            "description": op.description,
            "parameters": parameters,
            "responses": _responses(op),
        }
        if op.body is not None:
            spec["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(op.body)}},
            }
        paths.setdefault(oa_path, {})[op.method.lower()] = spec
    paths[PREFIX + "/openapi.json"] = {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1", "content": _json({})}},
        }
    }
    for model in inputs:  # inlined as parameters / body above; bodies stay referenced
        if model is not LinkRequest:
            defs.pop(model.__name__, None)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dlcsync API",
            "version": "1",
            "description": (__doc__ or "").strip(),
        },
        "paths": paths,
        "components": {
            "schemas": defs,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearerAuth": []}],
    }


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _responses(op: Operation) -> dict[str, Any]:
    status, model = op.ok
    answers: dict[str, Any] = {str(status): {"description": "OK", "content": _json(_ref(model))}}
    for code, why in {**ERRORS, **op.errors}.items():
        answers[str(code)] = {"description": why, "content": _json(_ref(ErrorResponse))}
    return dict(sorted(answers.items()))


def _parameters(schema: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """OpenAPI parameters from a model's JSON schema (a query value is never ``null``)."""
    required = set(schema.get("required", ()))
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        options = prop.pop("anyOf", None)
        if options is not None:
            non_null = [o for o in options if o.get("type") != "null"]
            if len(non_null) == 1:
                prop = {**non_null[0], **prop}
            else:
                prop["anyOf"] = non_null
        if prop.get("default", 0) is None:
            del prop["default"]
        prop.pop("title", None)
        description = prop.pop("description", None)
        param: dict[str, Any] = {
            "name": name,
            "in": where,
            "required": where == "path" or name in required,
            "schema": prop,
        }
        if description:
            param["description"] = description
        params.append(param)
    return params
