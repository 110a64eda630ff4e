"""Schemathesis against ``/api/v1/openapi.json`` through the WSGI app (SQLite, bounded).

With the token: no 5xx, every status code, content type and body conforms to the document.
Without it: nothing but the document itself answers 2xx (everything else is 401).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from webhooks.openapi import openapi_document

TOKEN = "test-api-token-0123456789abcdefghij"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# negative_data_rejection is left out: a negative case may drop the Authorization header,
# which this test puts back on every call, so the check would blame a valid request.


# Loaded from the same function that serves /api/v1/openapi.json; the app is attached per
# call below. (schemathesis.pytest.from_fixture would load it through the app, but its lazy
# loader touches a pytest private that pytest 9 removed.)
schema = schemathesis.openapi.from_dict(openapi_document())
schema.config.generation.update(max_examples=30)


@pytest.fixture
def api(sqlite_url: str, app_factory: Callable[..., Flask]) -> Flask:
    app = app_factory(sqlite_url, api_token=TOKEN)
    # Something to find: the fuzzer's valid numbers and campaign ids then hit real rows.
    app.test_client().post(
        "/api/v1/links",
        json={"provider": "plivo", "campaign_id": "CMP1", "numbers": ["+12025550101"]},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    served = app.test_client().get("/api/v1/openapi.json").get_json()
    assert served == json.loads(json.dumps(openapi_document()))
    return app


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_with_token(api: Flask, case: Any) -> None:
    case.call_and_validate(app=api, headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_refuses_without_token(api: Flask, case: Any) -> None:
    headers = dict(case.headers or {})
    headers.pop("Authorization", None)
    case.headers = headers
    response = case.call(app=api)
    if case.method.upper() != case.operation.method.upper():
        # The coverage phase also tries methods the operation does not have.
        assert response.status_code in (401, 404, 405), (case.method, response.status_code)
    elif case.operation.path == "/api/v1/openapi.json":
        assert response.status_code == 200
    else:
        assert response.status_code == 401, (case.path, response.status_code, response.text)
        assert response.json()["error"]["code"] == "unauthorized"
