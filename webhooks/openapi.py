"""The whole ``/api/v1`` blueprint, and its OpenAPI document (``GET /api/v1/openapi.json``).

The operations are declared on one blueprint (``webhooks.api.bp``) by the view modules:
:mod:`webhooks.api` (links, history, campaigns, events) and :mod:`webhooks.api_desired`
(adoption jobs, desired state). Importing this module imports them all, so the blueprint the
app registers and the document always list the same operations, whichever was imported first.
"""

from __future__ import annotations

import functools
import json
from typing import Any, NamedTuple

from flask import Flask

from webhooks import api_desired
from webhooks.api import api, bp
from webhooks.schemas import CampaignPath, JobPath, LinkPath

__all__ = ["Operation", "bp", "openapi_document", "operations"]

#: The view modules whose operations this document lists (imported for their routes).
VIEW_MODULES = (api_desired,)


@bp.get("/openapi.json", provide_automatic_options=False)
def openapi() -> tuple[Any, int]:
    return openapi_document(), 200


class Operation(NamedTuple):
    method: str
    path: str


def operations() -> list[Operation]:
    """Every operation of the document (the auth tests check they cover them all)."""
    paths = openapi_document()["paths"]
    return [Operation(method.upper(), path) for path, ops in paths.items() for method in ops]


#: Path values are validated in the views; the document shows the path models' rules.
PATH_MODELS = (LinkPath, CampaignPath, JobPath)


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the blueprint's views, as spectree builds it (on an app of
    its own, so that it is the same without a request and in any app)."""
    app = Flask(__name__)
    app.register_blueprint(bp)
    with app.app_context():
        document: dict[str, Any] = json.loads(json.dumps(api.spec))  # a copy, plain JSON
    rules = {
        name: schema
        for model in PATH_MODELS
        for name, schema in model.model_json_schema()["properties"].items()
    }
    for operation in (op for ops in document["paths"].values() for op in ops.values()):
        for param in operation["parameters"]:
            if param["in"] == "path" and param["name"] in rules:
                schema = {k: v for k, v in rules[param["name"]].items() if k != "title"}
                param["description"] = schema.pop("description", param["description"])
                param["schema"] = schema
    return document
