"""Telnyx requests checked against Telnyx's published OpenAPI document, as Telnyx checks them.

The document is vendored in ``sandbox/specs/telnyx-10dlc.openapi.yml`` (its source note at the
top: which upstream file and commit, what was trimmed). Every Telnyx request the sandbox serves
is validated with ``openapi-core`` before anything else looks at it, so that the sandbox refuses
what the real API refuses (``filter[telnyx_campaign_id]`` is ``format: uuid``: a shared
campaign's TCR id there is refused) instead of sharing our own assumptions.

Refusals use Telnyx's error shape (``10dlc_Errors``: ``{"errors": [{"code", "title", "detail",
"source": {"pointer" | "parameter"}}]}``). A value that breaks the schema is answered 422
(REFERENCE §12); a missing required parameter or body field 400 with code 10004, as the
sandbox always did (the exact status Telnyx uses for each case is UNCONFIRMED, see
``docs/providers.md``).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.exceptions import OpenAPIError
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.validation.request.exceptions import (
    InvalidRequestBody,
    MissingParameterError,
    MissingRequestBodyError,
    ParameterValidationError,
    RequestBodyValidationError,
    SecurityValidationError,
)
from openapi_core.validation.schemas.exceptions import InvalidSchemaValue
from werkzeug.datastructures import Headers, ImmutableMultiDict
from werkzeug.wrappers import Request

SPEC_FILE = "telnyx-10dlc.openapi.yml"
#: Where the spec's paths are mounted (its server is ``https://api.telnyx.com/v2``).
BASE_PATH = "/v2"
#: The legacy camelCase alias the sandbox still serves, checked as the path it stands for.
ALIASES = {"/v2/10dlc/phoneNumberCampaign": "/v2/10dlc/phone_number_campaigns"}


@dataclass(frozen=True)
class Violation:
    """Why the spec refuses a request, as Telnyx would answer it."""

    status: int
    code: str
    title: str
    detail: str
    source: Mapping[str, str]

    def body(self) -> dict[str, Any]:
        error = {"code": self.code, "title": self.title, "detail": self.detail}
        return {"errors": [{**error, "source": dict(self.source)}]}


def spec_text() -> str:
    return resources.files("sandbox").joinpath("specs", SPEC_FILE).read_text(encoding="utf-8")


def load() -> None:
    """Parse the document now (it takes a while), not on the first request."""
    _openapi()
    _free_templates()


@cache
def _openapi() -> OpenAPI:
    document = yaml.safe_load(spec_text())
    # Served on whatever host the sandbox listens on, under the same base path.
    document["servers"] = [{"url": BASE_PATH}]
    return OpenAPI.from_dict(document)


class _SpecRequest:
    """A werkzeug request as openapi-core reads it, with an alias path replaced."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(request.args),
            header=Headers(request.headers),
            cookie=request.cookies,
        )

    @property
    def host_url(self) -> str:
        return str(self.request.host_url)

    @property
    def path(self) -> str:
        return _canonical(str(self.request.path))

    @property
    def method(self) -> str:
        return str(self.request.method).lower()

    @property
    def body(self) -> bytes | None:
        return self.request.get_data(cache=True)

    @property
    def content_type(self) -> str:
        return str(self.request.content_type or "application/octet-stream")


def _canonical(path: str) -> str:
    for alias, canonical in ALIASES.items():
        if path == alias or path.startswith(alias + "/"):
            return canonical + path[len(alias) :]
    return path


def check(request: Request) -> Violation | None:
    """``None`` when the request conforms to the spec, else how Telnyx refuses it."""
    key = _memo_key(request)
    with _memo_lock:
        if key in _memo:
            _memo.move_to_end(key)
            return _memo[key]
    try:
        _openapi().validate_request(_SpecRequest(request))
        verdict = None
    except OpenAPIError as exc:
        verdict = _violation(exc)
    with _memo_lock:
        _memo[key] = verdict
        while len(_memo) > MEMO_SIZE:
            _memo.popitem(last=False)
    return verdict


# openapi-core takes milliseconds per request, and the sandbox must serve ~1000 requests per
# second: verdicts are remembered per request shape. A path parameter whose schema is a bare
# ``type: string`` (every one in this spec) accepts any value, so such values are left out of
# the shape; anything else in the request (query, body, content type) is part of it.
MEMO_SIZE = 4096
_memo: OrderedDict[tuple[str, ...], Violation | None] = OrderedDict()
_memo_lock = threading.Lock()
_FREE_PARAM_KEYS = frozenset({"type", "title", "description", "example"})


def _memo_key(request: Request) -> tuple[str, ...]:
    """The request's shape, from the raw WSGI environ (cheap: no parsing)."""
    environ = request.environ
    path = _canonical(str(request.path))
    for pattern, template in _free_templates():
        if pattern.fullmatch(path):
            path = template
            break
    return (
        str(environ.get("REQUEST_METHOD", "")),
        path,
        str(environ.get("QUERY_STRING", "")),
        str(environ.get("CONTENT_TYPE", "")),
        repr(request.get_data(cache=True)),
    )


@cache
def _free_templates() -> tuple[tuple[re.Pattern[str], str], ...]:
    """Path templates whose path parameters all accept any string, as (regex, template)."""
    document = yaml.safe_load(spec_text())
    found = []
    for template, item in document.get("paths", {}).items():
        params = [
            p
            for operation in item.values()
            if isinstance(operation, dict)
            for p in operation.get("parameters", [])
            if isinstance(p, dict) and p.get("in") == "path"
        ]
        if not params or "{" not in template:
            continue
        if all(
            p.get("schema", {}).get("type") == "string"
            and set(p.get("schema", {})) <= _FREE_PARAM_KEYS
            for p in params
        ):
            pieces = re.split(r"\{[^/}]+\}", BASE_PATH + template)
            regex = "[^/]+".join(re.escape(piece) for piece in pieces)
            found.append((re.compile(regex), BASE_PATH + template))
    return tuple(found)


def _violation(exc: OpenAPIError) -> Violation:
    if isinstance(exc, SecurityValidationError):
        return Violation(401, "10009", "Authentication failed", str(exc), {})
    if isinstance(exc, PathError):
        return Violation(
            404,
            "10005",
            "Resource not found",
            "The requested resource or URL could not be found.",
            {},
        )
    if isinstance(exc, MissingParameterError):
        return _missing(f"The '{exc.name}' parameter is required.", parameter=exc.name)
    if isinstance(exc, ParameterValidationError):
        name = _parameter_name(exc.name, _schema_errors(exc))
        return _invalid(f"Invalid {exc.location} parameter {name}: {_reason(exc)}", parameter=name)
    if isinstance(exc, MissingRequestBodyError):
        return _missing("The request body is required.", pointer="/")
    if isinstance(exc, InvalidRequestBody):
        return _body_violation(list(_schema_errors(exc)))
    if isinstance(exc, RequestBodyValidationError):  # not JSON, or not a JSON content type
        return Violation(400, "10015", "Bad Request", "The request body is not valid JSON.", {})
    return _invalid(str(exc)[:300], pointer="/")


def _body_violation(errors: list[Any]) -> Violation:
    if not errors:
        return _invalid("The request body does not match the schema.", pointer="/")
    first = errors[0]
    pointer = _pointer(getattr(first, "absolute_path", ()))
    if getattr(first, "validator", None) == "required":
        instance = first.instance if isinstance(first.instance, dict) else {}
        missing = [k for k in first.validator_value if k not in instance] or ["?"]
        field = missing[0]
        return _missing(f"The '{field}' parameter is required.", pointer=f"{pointer}/{field}")
    if first.instance is None and pointer != "":
        field = pointer.rsplit("/", 1)[-1]
        return _missing(f"The '{field}' parameter is required.", pointer=pointer)
    return _invalid(f"{pointer or '/'}: {first.message}"[:300], pointer=pointer or "/")


def _missing(detail: str, **source: str) -> Violation:
    return Violation(400, "10004", "Missing required parameter", detail, source)


def _invalid(detail: str, **source: str) -> Violation:
    return Violation(422, "10027", "Unprocessable Entity", detail, source)


def _schema_errors(exc: BaseException) -> Iterable[Any]:
    cause = exc.__cause__
    if isinstance(cause, InvalidSchemaValue):
        return list(cause.schema_errors)
    return []


def _reason(exc: BaseException) -> str:
    errors = list(_schema_errors(exc))
    if errors:
        return str(errors[0].message)[:200]
    return str(exc.__cause__ or exc)[:200]


def _parameter_name(name: str, errors: Iterable[Any]) -> str:
    """``filter[telnyx_campaign_id]`` rather than ``filter`` for a deepObject member."""
    for error in errors:
        path = list(getattr(error, "absolute_path", ()))
        if path:
            return name + "".join(f"[{p}]" for p in path)
    return name


def _pointer(path: Iterable[Any]) -> str:
    return "".join(f"/{p}" for p in path)
