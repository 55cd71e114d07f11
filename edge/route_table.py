"""One declaration per HTTP route: the router, the access check and the OpenAPI 3.1
document are all derived from it, for the edge LAN API and the cloud API alike.

A :class:`Route` says what is served (method, path, handler), who may call it
(``auth``: each application has its own rule type and its own check) and what
goes in and out (body, query, response).  :func:`mount` adds a table to an
aiohttp application, wrapping every handler with the application's access
check, so a route cannot be served without its rule; :func:`openapi` describes
the same table, so a route cannot be served undocumented.  Neither knows how
an application authenticates: that is the ``wrap`` given to :func:`mount` and
the :class:`DocPolicy` given to :func:`openapi`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from aiohttp import web
from pydantic import BaseModel

H = TypeVar("H")  # the application's handler type
A = TypeVar("A")  # the application's access rule type

WebHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PATH_PARAM = re.compile(r"{(\w+)(?::[^}]*)?}")
WEBSOCKET = 101  # ``status`` of a WebSocket route: the upgrade


class RouteTableError(Exception):
    """A route table that cannot be served as declared (a programming error)."""


@dataclass(frozen=True)
class Route(Generic[H, A]):
    """One route.  ``path`` is below ``prefix`` (the cloud's ``/api/v1/``)."""

    method: str
    path: str
    handler: H
    auth: A
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    status: int = 200
    # A model, or the name of a component schema the application supplies.
    response: type[BaseModel] | str | None = None
    content: str = "application/json"
    errors: tuple[int, ...] = ()  # statuses beyond those implied by auth, body, query, path
    # A folder served below the path (``.../{path}``) instead of a handler.
    static_dir: Callable[[web.Application], Path] | None = field(default=None, compare=False)

    prefix: ClassVar[str] = ""

    @property
    def full_path(self) -> str:
        return self.prefix + self.path

    @property
    def path_params(self) -> list[str]:
        return PATH_PARAM.findall(self.full_path)


R = TypeVar("R", bound="Route[Any, Any]")


def mount(
    app: web.Application,
    routes: Iterable[R],
    wrap: Callable[[R], WebHandler],
    *,
    public: Callable[[R], bool] = lambda route: False,
) -> None:
    """Add every route to ``app``'s router; ``wrap`` turns a route into the aiohttp
    handler that checks its access rule before running it.  A static folder has
    no handler to wrap: ``public`` must say its rule lets anyone in."""
    seen: set[tuple[str, str]] = set()
    # aiohttp tries the resources filed under a path's longest fixed prefix in
    # the order they were added: "/rooms" and "/rooms/{room_id}" share one
    # list.  A plain path never matches where a path with variables does (it
    # is exactly the prefix, they are longer), so the plain ones go last and
    # GET /rooms/{room_id} is matched at the first try.
    routes = sorted(routes, key=lambda route: not route.path_params)
    for route in routes:
        key = (route.method, route.full_path)
        if key in seen:
            raise RouteTableError(f"{route.method} {route.full_path} is declared twice")
        seen.add(key)
        if route.static_dir is not None:
            directory = route.static_dir(app)
            prefix = route.full_path.removesuffix("/{path}")
            if route.method != "GET" or prefix == route.full_path:
                raise RouteTableError(f"static route {route.full_path} must be GET .../{{path}}")
            if not public(route):
                raise RouteTableError(f"static route {route.full_path} must be public")
            if directory.is_dir():
                app.router.add_static(prefix, directory, follow_symlinks=False)
            continue
        if route.method == "GET":  # and HEAD beside it, as HTTP expects
            app.router.add_get(route.full_path, wrap(route))
        else:
            app.router.add_route(route.method, route.full_path, wrap(route))


# ---- OpenAPI ------------------------------------------------------------------------------
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Stable error code."},
                "message": {"type": "string"},
                "field": {"type": ["string", "null"], "description": "Field at fault."},
            },
        }
    },
}
ERROR_NAMES = {
    400: "Malformed request",
    401: "Missing or bad credentials",
    403: "Not allowed for this caller",
    404: "No such resource",
    409: "The current state refuses it",
    413: "Body too large",
    422: "A field broke a rule (named in error.field)",
    429: "Too many attempts",
    502: "Device refused or failed",
    503: "Device or database unavailable",
    504: "Device timeout",
}


@dataclass(frozen=True)
class DocPolicy:
    """How one application describes its routes' access rules and parameters."""

    title: str
    version: str
    description: str
    security_schemes: dict[str, Any]
    # The operation's ``security`` list ([] = public) and its "Requires: ..." text.
    security: Callable[[Route[Any, Any]], list[dict[str, list[str]]]]
    requires: Callable[[Route[Any, Any]], str | None]
    # Statuses every operation of this rule may answer (401/403 for a protected one).
    auth_errors: Callable[[Route[Any, Any]], Sequence[int]]
    path_param: Callable[[str], dict[str, Any]]
    # Component schemas named by ``Route.response`` strings, and a last pass over all.
    components: Callable[[], dict[str, Any]] = dict
    finish_schemas: Callable[[dict[str, Any]], None] = lambda schemas: None
    servers: tuple[str, ...] = ()


def model_schema(model: type[BaseModel], into: dict[str, Any]) -> dict[str, str]:
    """Put ``model`` (and the models it uses) into ``into``; a reference to it."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        into[name] = sub
    into[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def query_params(model: type[BaseModel], into: dict[str, Any]) -> list[dict[str, Any]]:
    """One parameter per field of ``model``; the types they use go into ``into``."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    into.update(schema.pop("$defs", {}))
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", "")
        prop.pop("title", None)
        prop.pop("default", None)
        params.append(
            {"name": name, "in": "query", "required": False, "description": description,
             "schema": prop}
        )  # fmt: skip
    return params


def operation_id(route: Route[Any, Any]) -> str:
    """Unique by construction: method and path (``mount`` refuses duplicates)."""
    words = re.sub(r"[^a-z0-9]+", "_", route.full_path.lower()).strip("_")
    return f"{route.method.lower()}_{words or 'root'}"


def _success(route: Route[Any, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    if route.status == WEBSOCKET:
        return {"description": "Switching to the WebSocket protocol"}
    if route.content != "application/json":
        return {"description": "OK", "content": {route.content: {"schema": {"type": "string"}}}}
    schema: dict[str, Any] = {"type": "object"}
    if isinstance(route.response, str):
        schema = {"$ref": f"#/components/schemas/{route.response}"}
    elif route.response is not None:
        schema = model_schema(route.response, schemas)
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}


def _operation(route: Route[Any, Any], policy: DocPolicy, schemas: dict[str, Any]) -> Any:
    codes = {*policy.auth_errors(route), *route.errors}
    params = [
        {"name": name, "in": "path", "required": True, "schema": policy.path_param(name)}
        for name in route.path_params
    ]
    if params:
        codes.add(404)
    if route.query is not None:
        params += query_params(route.query, schemas)
        codes.add(422)
    op: dict[str, Any] = {
        "operationId": operation_id(route),
        "summary": route.summary,
        "security": policy.security(route),
    }
    requires = policy.requires(route)
    if requires:
        op["description"] = f"Requires: {requires}."
    if params:
        op["parameters"] = params
    if route.body is not None:
        codes |= {400, 422}
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": model_schema(route.body, schemas)}},
        }
    unknown = codes - set(ERROR_NAMES)
    if unknown:
        raise RouteTableError(f"{route.full_path}: no error response for {sorted(unknown)}")
    op["responses"] = {str(route.status): _success(route, schemas)} | {
        str(code): {"$ref": f"#/components/responses/E{code}"} for code in sorted(codes)
    }
    return op


def openapi(routes: Iterable[Route[Any, Any]], policy: DocPolicy) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``: one operation per route, nothing else."""
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA, **policy.components()}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        path = PATH_PARAM.sub(r"{\1}", route.full_path)
        paths.setdefault(path, {})[route.method.lower()] = _operation(route, policy, schemas)
    policy.finish_schemas(schemas)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": policy.title, "version": policy.version},
    }
    if policy.description:
        document["info"]["description"] = policy.description
    if policy.servers:
        document["servers"] = [{"url": url} for url in policy.servers]
    document["paths"] = paths
    document["components"] = {
        "schemas": schemas,
        "responses": {
            f"E{code}": {
                "description": name,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
            for code, name in ERROR_NAMES.items()
        },
        "securitySchemes": policy.security_schemes,
    }
    return document
