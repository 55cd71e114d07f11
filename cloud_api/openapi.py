"""OpenAPI 3.1 document built from the same route table aiohttp serves
(the mechanism is shared with the edge: ``edge.route_table``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cloud_api.spec import Route
from edge.route_table import DocPolicy, openapi

# Every cloud operation may answer these (the shop's refusals are not per route).
_ERRORS = (400, 401, 403, 404, 409, 413, 422)


def _security(route: Any) -> list[dict[str, list[str]]]:
    if route.auth == "node":
        return [{"node": []}]
    if route.auth == "public":
        return []
    return [{"bearer": []}]


def _requires(route: Any) -> str | None:
    return None if route.auth in ("node", "public") else f"{route.auth} token"


POLICY = DocPolicy(
    title="CoreSync cloud API",
    version="1.0.0",
    description="",
    security_schemes={
        "bearer": {"type": "http", "scheme": "bearer"},
        "node": {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Node <node_id>:<secret>",
        },
    },
    security=_security,
    requires=_requires,
    auth_errors=lambda route: _ERRORS,
    path_param=lambda name: {"type": "string", "minLength": 1, "maxLength": 100},
)


def build_openapi(routes: Sequence[Route]) -> dict[str, Any]:
    document = openapi(routes, POLICY)
    document["security"] = [{"bearer": []}]
    return document
