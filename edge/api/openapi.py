"""The OpenAPI 3.1 document served at ``/api/openapi.json``.

Written next to the routes rather than generated: tests walk the router and
fail when a route is missing here or a documented path has no route.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from edge.api.models import CommandBody, LoginBody, NewUserBody, PairBody, UserPatchBody
from edge.api.routes_alerts import alert_paths
from edge.api.routes_door import BODIES as DOOR_BODIES
from edge.api.routes_door import door_paths
from edge.api.routes_guest import guest_paths
from edge.api.routes_room_history import history_paths
from edge.api.routes_schedules import schedule_paths
from edge.api.routes_sync import sync_paths
from edge.api.shop_openapi import SHOP_PATHS, shop_schemas

API_VERSION = "1"

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "field"],
            "properties": {
                "code": {"type": "string", "description": "Stable error code."},
                "message": {"type": "string"},
                "field": {"type": ["string", "null"], "description": "Field at fault."},
            },
        }
    },
}

ANY_OBJECT = {"type": "object"}


def _param(name: str, where: str = "path", schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema or {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_-]{0,62}$"},
    }


LIMIT = _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000})


def _op(
    summary: str,
    *,
    auth: str | None = "staff",
    body: type[BaseModel] | None = None,
    params: list[dict[str, Any]] | None = None,
    ok: int = 200,
    content: str = "application/json",
    errors: tuple[int, ...] = (),
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        str(ok): {
            "description": "Success",
            "content": {content: {"schema": ANY_OBJECT}}
            if content == "application/json"
            else {content: {"schema": {"type": "string"}}},
        },
    }
    codes = set(errors)
    if auth:
        codes |= {401, 403}
    if body:
        codes |= {400, 422}
    if params and any(p["in"] == "path" for p in params):
        codes.add(404)
    for code in sorted(codes):
        responses[str(code)] = {"$ref": f"#/components/responses/E{code}"}
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if auth:
        op["description"] = f"Requires: {auth}."
        op["security"] = [{"bearer": []}, {"cookie": []}]
    else:
        op["security"] = []
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{body.__name__}"}}
            },
        }
    return op


ROOM = _param("room_id")

PATHS: dict[str, dict[str, Any]] = {
    "/healthz": {
        "get": _op(
            "Health of every component, database, the disk and each link", auth=None, errors=(503,)
        )
    },
    "/metrics": {
        "get": _op(
            "Prometheus metrics (loopback, or staff token)",
            auth="staff unless from loopback",
            content="text/plain",
        )
    },
    "/api/openapi.json": {"get": _op("This document", auth=None)},
    "/": {"get": _op("Staff dashboard page", auth=None, content="text/html")},
    "/dashboard": {"get": _op("Staff dashboard page", auth=None, content="text/html")},
    "/tablet": {"get": _op("Room tablet page", auth=None, content="text/html")},
    "/static/{path}": {
        "get": _op(
            "Static files of the pages",
            auth=None,
            content="text/plain",
            params=[_param("path", schema={"type": "string"})],
        )
    },
    "/api/v1/ws": {
        "get": _op(
            "WebSocket stream of state changes and events (token may be "
            "given as ?token= for browsers)",
            auth="staff or tablet",
            ok=101,
            params=[_param("token", "query", {"type": "string"})],
        )
    },
    "/api/v1/auth/login": {
        "post": _op(
            "Log in; returns a token and sets the session cookie",
            auth=None,
            body=LoginBody,
            errors=(401, 429),
        )
    },
    "/api/v1/auth/logout": {"post": _op("End the session")},
    "/api/v1/me": {"get": _op("Who the token belongs to", auth="staff or tablet")},
    "/api/v1/users": {
        "get": _op("List staff accounts", auth="admin"),
        "post": _op(
            "Create a staff account", auth="admin", body=NewUserBody, ok=201, errors=(409,)
        ),
    },
    "/api/v1/users/{username}": {
        "patch": _op(
            "Change password, role or disabled",
            auth="admin",
            body=UserPatchBody,
            params=[_param("username")],
            errors=(409,),
        ),
        "delete": _op(
            "Delete a staff account", auth="admin", params=[_param("username")], errors=(409,)
        ),
    },
    "/api/v1/audit": {
        "get": _op(
            "Audit log, newest first",
            auth="manager",
            params=[LIMIT, _param("action", "query", {"type": "string"})],
            errors=(422,),
        )
    },
    "/api/v1/rooms": {"get": _op("Rooms with live device state", auth="staff or tablet")},
    "/api/v1/rooms/{room_id}": {
        "get": _op("One room", auth="staff or the room's tablet", params=[ROOM])
    },
    "/api/v1/rooms/{room_id}/scenes": {
        "get": _op("Scenes of a room", auth="staff or the room's tablet", params=[ROOM])
    },
    "/api/v1/rooms/{room_id}/scenes/{scene_id}/activate": {
        "post": _op(
            "Run a scene",
            auth="staff or the room's tablet",
            params=[ROOM, _param("scene_id")],
            errors=(502,),
        ),
    },
    "/api/v1/rooms/{room_id}/devices/{device_id}/command": {
        "post": _op(
            "Command one device within its limits",
            auth="staff or the room's tablet (lights and climate only)",
            body=CommandBody,
            params=[ROOM, _param("device_id")],
            errors=(502, 503, 504),
        ),
    },
    "/api/v1/rooms/{room_id}/pairing-codes": {
        "post": _op("One-time tablet pairing code for a room", params=[ROOM], ok=201),
    },
    "/api/v1/tablets/pair": {
        "post": _op(
            "Trade a pairing code for a room token", auth=None, body=PairBody, ok=201, errors=(429,)
        )
    },
    "/api/v1/tablets": {"get": _op("Paired tablets")},
    "/api/v1/tablets/{tablet_id}": {"delete": _op("Revoke a tablet", params=[_param("tablet_id")])},
    "/api/v1/commands": {
        "get": _op(
            "Command log, newest first",
            params=[LIMIT, _param("device_id", "query", {"type": "string"})],
            errors=(422,),
        )
    },
}

_ERROR_NAMES = {
    400: "Malformed request",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    422: "Invalid field",
    429: "Too many attempts",
    502: "Device refused or failed",
    503: "Device or database unavailable",
    504: "Device timeout",
}


def openapi_document(site_id: str) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for model in (LoginBody, CommandBody, PairBody, NewUserBody, UserPatchBody, *DOOR_BODIES):
        schemas[model.__name__] = model.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        schemas.update(schemas[model.__name__].pop("$defs", {}))
    schemas.update(shop_schemas())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "CoreSync Edge LAN API",
            "version": API_VERSION,
            "description": f"Room tablets and staff tools for site {site_id}. "
            'Errors: {"error": {"code", "message", "field"}}.',
        },
        "servers": [{"url": "/"}],
        "paths": {
            **PATHS,
            **SHOP_PATHS,
            **door_paths(_op, _param, LIMIT),
            **sync_paths(_op),
            **schedule_paths(_op, _param),
            **alert_paths(_op, _param),
            **guest_paths(_op, _param),
            **history_paths(_op, _param),
        },
        "components": {
            "schemas": schemas,
            "responses": {
                f"E{code}": {
                    "description": name,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
                for code, name in _ERROR_NAMES.items()
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "coresync_session"},
            },
        },
    }
