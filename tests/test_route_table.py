"""The route table: every route the edge and the cloud serve has an access rule
and an OpenAPI operation by construction, and the rule runs before the handler.

Built from the table alone (no site needed): the edge's ``create_app`` and the
cloud's ``build_app`` mount exactly these tables, which the router-vs-document
tests (test_api_openapi_ws.py, test_cloud_api.py) and the no-credentials sweep
(test_auth_coverage.py) check against the live applications.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from cloud_api.admin_routes import ADMIN_ROUTES
from cloud_api.openapi import build_openapi
from cloud_api.routes import ROUTES as CLOUD_ROUTES
from cloud_api.sync_routes import SYNC_ROUTES
from edge.api.access import PUBLIC, ROOM, SIGNED_IN, STAFF, Access, Route, guarded, is_public
from edge.api.auth import Principal
from edge.api.errors import error_middleware
from edge.api.keys import BODY, PRINCIPAL, QUERY
from edge.api.models import LimitQuery, PairBody
from edge.api.routes import ROUTES, openapi_document
from edge.route_table import PATH_PARAM, RouteTableError, mount

CLOUD_LEVELS = {"public", "any", "member", "staff", "manager", "admin", "node"}


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m.upper(), p): op for p, ops in doc["paths"].items() for m, op in ops.items()}


def test_every_edge_route_has_a_rule_and_an_operation() -> None:
    doc = openapi_document("site-x")
    ops = operations(doc)
    declared = {(r.method, PATH_PARAM.sub(r"{\1}", r.full_path)) for r in ROUTES}
    assert len(declared) == len(ROUTES), "a route is declared twice"
    assert set(ops) == declared
    for route in ROUTES:
        assert isinstance(route.auth, Access), route.full_path
        op = ops[(route.method, route.full_path)]
        # The document says who may call it, from the same rule the check uses.
        if route.auth is PUBLIC:
            assert op["security"] == [], route.full_path
        else:
            assert op["security"], route.full_path
            assert op["description"] == f"Requires: {route.auth.requires}."
            assert {"401", "403"} <= set(op["responses"]), route.full_path
        assert op["summary"] and op["operationId"]
    assert len({op["operationId"] for op in ops.values()}) == len(ops)
    # Every room route is one the room rule can judge.
    assert all("room_id" in r.path_params for r in ROUTES if r.auth is ROOM)
    # WebSocket, pages and the static folder are routes too.
    assert ops[("GET", "/api/v1/ws")]["responses"]["101"]
    assert ("GET", "/static/{path}") in ops and ("GET", "/tablet") in ops


def test_every_cloud_route_has_a_rule_and_an_operation() -> None:
    routes = CLOUD_ROUTES + ADMIN_ROUTES + SYNC_ROUTES
    ops = operations(build_openapi(routes))
    assert set(ops) == {(r.method, r.full_path) for r in routes}
    for route in routes:
        assert route.auth in CLOUD_LEVELS, route.full_path
        assert (ops[(route.method, route.full_path)]["security"] == []) == (route.auth == "public")


async def test_the_rule_runs_before_the_handler(tmp_path: Path) -> None:
    """A handler behind a rule is never reached by a caller the rule refuses."""
    reached: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        reached.append(request.path)
        return web.json_response({"ok": True})

    @web.middleware
    async def as_tablet(request: web.Request, handler: Any) -> web.StreamResponse:
        # The auth middleware's result for a tablet paired with room-a.
        request[PRINCIPAL] = Principal("tablet", "tab-1", room_id="room-a")
        return await handler(request)

    table = (
        Route("GET", "/staff-only", handler, STAFF, "staff"),
        Route("GET", "/rooms/{room_id}", handler, ROOM, "a room"),
        Route("GET", "/anyone-signed-in", handler, SIGNED_IN, "signed in"),
    )
    app = web.Application(middlewares=[error_middleware, as_tablet])
    mount(app, table, guarded)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/staff-only")).status == 403
        other = await client.get("/rooms/room-b")
        assert other.status == 403 and (await other.json())["error"]["field"] == "room_id"
        assert (await client.get("/rooms/room-a")).status == 200
        assert (await client.get("/anyone-signed-in")).status == 200
    assert reached == ["/rooms/room-a", "/anyone-signed-in"]


async def test_the_declared_models_parse_the_request_before_the_handler() -> None:
    """What the document describes is what is enforced: the route's own models."""
    seen: list[Any] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request[QUERY], request[BODY]))
        return web.json_response({"ok": True})

    @web.middleware
    async def as_staff(request: web.Request, handler: Any) -> web.StreamResponse:
        request[PRINCIPAL] = Principal("staff", "ann", role="staff")
        return await handler(request)

    table = (Route("POST", "/pair", handler, STAFF, "pair", PairBody, query=LimitQuery),)
    app = web.Application(middlewares=[error_middleware, as_staff])
    mount(app, table, guarded)
    async with TestClient(TestServer(app)) as client:
        bad_body = await client.post("/pair", json={"code": "A", "extra": 1})
        assert bad_body.status == 422
        assert (await bad_body.json())["error"]["field"] == "extra"
        bad_query = await client.post("/pair?limit=0", json={"code": "A"})
        assert bad_query.status == 422
        assert (await bad_query.json())["error"]["field"] == "limit"
        assert (await client.post("/pair", data=b"[1]")).status == 400
        ok = await client.post("/pair?limit=5", json={"code": "A"})
        assert ok.status == 200
    assert seen == [(LimitQuery(limit=5), PairBody(code="A"))]


async def _noop(request: web.Request) -> web.Response:
    return web.json_response({})


@pytest.mark.parametrize(
    "table",
    [
        # The room rule on a path without a room.
        (Route("GET", "/tablets", _noop, ROOM, "no room in the path"),),
        # The same method and path twice.
        (Route("GET", "/x", _noop, STAFF, "one"), Route("GET", "/x", _noop, PUBLIC, "two")),
        # A static folder behind a rule no check could enforce.
        (Route("GET", "/files/{path}", _noop, STAFF, "files", static_dir=lambda app: Path(".")),),
    ],
)
def test_a_table_that_cannot_be_served_as_declared_is_refused(table: tuple[Route, ...]) -> None:
    with pytest.raises(RouteTableError):
        mount(web.Application(), table, guarded, public=is_public)


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


@pytest.mark.parametrize(
    "doc",
    [openapi_document("site-x"), build_openapi(CLOUD_ROUTES + ADMIN_ROUTES + SYNC_ROUTES)],
    ids=["edge", "cloud"],
)
def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    for ref in refs(doc):
        assert ref.startswith("#/components/"), ref
        kind, name = ref.split("/")[-2:]
        assert name in doc["components"][kind], ref
