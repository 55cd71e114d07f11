"""OpenAPI 3.1 document built from the same route table aiohttp serves."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from cloud_api.spec import Route

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "field": {"type": ["string", "null"]},
                "message": {"type": "string"},
            },
        }
    },
}
_ERRORS = {
    "400": "Malformed request",
    "401": "Missing or bad credentials",
    "403": "Not allowed for this caller",
    "404": "No such resource",
    "409": "The current state refuses it",
    "413": "Body too large",
    "422": "A field broke a rule (named in error.field)",
}


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _query_params(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", "")
        prop.pop("title", None)
        params.append(
            {"name": name, "in": "query", "required": False, "description": description,
             "schema": prop}
        )  # fmt: skip
    return params


def _body_schema(media_type: str) -> dict[str, Any]:
    return {"type": "object"} if media_type == "application/json" else {"type": "string"}


def build_openapi(routes: tuple[Route, ...]) -> dict[str, Any]:
    components: dict[str, Any] = {"Error": _ERROR}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        op: dict[str, Any] = {
            "operationId": route.handler.__name__ + "_" + route.method.lower(),
            "summary": route.summary,
            "responses": {
                str(route.status): {
                    "description": "OK",
                    "content": {route.media_type: {"schema": _body_schema(route.media_type)}},
                },
                **{
                    code: {
                        "description": text,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                        },
                    }
                    for code, text in _ERRORS.items()
                },
            },
        }
        params = [
            {"name": name, "in": "path", "required": True,
             "schema": {"type": "string", "minLength": 1, "maxLength": 100}}
            for name in re.findall(r"{(\w+)}", route.path)
        ]  # fmt: skip
        if route.query is not None:
            params += _query_params(route.query)
        if params:
            op["parameters"] = params
        if route.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _schema(route.body, components)}},
            }
        if route.auth == "node":
            op["security"] = [{"node": []}]
        elif route.auth == "public":
            op["security"] = []
        else:
            op["description"] = f"Requires: {route.auth} token."
        paths.setdefault(route.full_path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "CoreSync cloud API", "version": "1.0.0"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "node": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "Node <node_id>:<secret>",
                },
            },
        },
        "security": [{"bearer": []}],
    }
