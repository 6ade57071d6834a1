"""``GET /openapi.json``: the API description, generated from :mod:`~beachmanager.api.route_table`."""

from __future__ import annotations

from typing import Any

from . import models as m
from .deps import ApiDeps
from .errors import ERROR_WORDS
from .handlers import Handlers
from .responses import json_body
from .route_table import ROUTES, Route

PATH_SCHEMAS: dict[str, dict[str, Any]] = {
    "session_id": m.SESSION_ID, "host_session_id": m.SESSION_ID,
    "private_beach_id": m.PRIVATE_BEACH_ID, "account_id": m.ACCOUNT_PATH,
    "action_id": {"type": "string", "minLength": 1, "maxLength": 128},
}


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": route.summary,
                          "operationId": f"{route.method.lower()}{route.openapi_path}".replace("/", "_")}
    params = [{"name": p, "in": "path", "required": True, "schema": PATH_SCHEMAS.get(p, {"type": "string"})}
              for p in route.path_params]
    params += [{"name": name, "in": "query", "required": False, "schema": schema}
               for name, schema in route.query.items()]
    if params:
        op["parameters"] = params
    if route.request is not None:
        op["requestBody"] = {"required": bool(route.request.get("required")),
                             "content": {"application/json": {"schema": route.request}}}
    ok: dict[str, Any] = {"description": "OK"}
    if route.content_type == "application/json":
        ok["content"] = {"application/json": {"schema": route.response or {"type": "object"}}}
    else:
        ok["content"] = {route.content_type: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(route.status): ok}
    errors = set(route.errors)
    if route.public:
        op["security"] = []
    else:
        op["security"] = [{"bearer": [route.scope]}]
        op["x-required-scope"] = route.scope
        if route.beach not in (None, "manager"):
            op["x-beach-membership"] = {"beach": route.beach, "role": route.role}
        # any guarded request: a bad id (400), no or a bad token (401), scope or membership (403),
        # the token buckets (429), a key set or the registry out of reach (503)
        errors |= {400, 401, 403, 429, 503}
    for status in sorted(errors):
        responses[str(status)] = {"description": ERROR_WORDS.get(status, "error"),
                                  "content": {"application/json": {"schema": m.ERROR}}}
    op["responses"] = responses
    return op


def document(version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.openapi_path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "beach-manager", "version": version,
                 "description": "Every route except the probes needs a Beach Gate or Clerk bearer token "
                                "carrying the route's scope (x-required-scope)."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "bearerFormat": "JWT"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    }


def install(on: Handlers, deps: ApiDeps) -> None:
    doc = document(deps.ctx.version)

    @on("openapi.document")
    def openapi(request):
        return json_body(request, doc)
