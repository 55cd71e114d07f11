"""The OpenAPI document matches the router, and the WebSocket stream delivers
state changes with tablets kept to their own room."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import edge.api.auth
from edge.api.keys import OPENAPI
from tests.test_api_support import ApiSite, api

__all__ = ["api"]

METHODS = {"GET", "POST", "PATCH", "DELETE", "PUT"}


def routed(app: web.Application) -> set[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        resource = route.resource
        assert resource is not None
        path = resource.canonical
        if isinstance(resource, web.StaticResource):
            path = path.rstrip("/") + "/{path}"
        if route.method == "*" or route.method in METHODS:
            found.add((route.method, path))
    return found


async def test_openapi_documents_every_route_and_nothing_else(api: ApiSite) -> None:
    resp = await api.client.get("/api/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"].startswith("3.1")
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    assert routed(api.client.app) == documented
    assert doc == api.client.app[OPENAPI].document()
    # Every documented request body points at a schema that exists.
    for ops in doc["paths"].values():
        for op in ops.values():
            ref = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            if ref:
                name = ref["schema"]["$ref"].rsplit("/", 1)[1]
                assert name in doc["components"]["schemas"]


async def test_unexpected_errors_are_json_500_without_traceback(api: ApiSite) -> None:
    # Simulate a bug in the core: a failure deep in a handler must not leak out.
    original = api.core.rooms
    api.core.rooms = lambda: (_ for _ in ()).throw(RuntimeError("secret internals"))  # type: ignore[method-assign]
    try:
        resp = await api.client.get("/api/v1/rooms", headers=api.auth("staff1"))
    finally:
        api.core.rooms = original  # type: ignore[method-assign]
    assert resp.status == 500
    text = await resp.text()
    assert "secret internals" not in text and "Traceback" not in text
    assert json.loads(text)["error"]["code"] == "internal"
    resp = await api.client.get("/api/v1/nothing-here")
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    resp = await api.client.put("/api/v1/rooms", headers=api.auth("staff1"))
    assert resp.status == 405
    assert (await resp.json())["error"]["code"] == "method_not_allowed"
    # The 405 names what the path takes; no response names server versions.
    assert {m.strip() for m in resp.headers["Allow"].split(",")} == {"GET", "HEAD"}
    assert resp.headers["Server"] == "coresync-edge"


async def next_message(
    ws: aiohttp.ClientWebSocketResponse, want: Any, within_s: float = 10.0
) -> dict[str, Any]:
    async with asyncio.timeout(within_s):
        while True:
            msg: dict[str, Any] = await ws.receive_json()
            if want(msg):
                return msg


async def ws_ticket(api: ApiSite, token: str) -> str:
    """What a browser tablet does: trade the token (a header) for a one-time ticket."""
    resp = await api.client.post("/api/v1/ws/ticket", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["ticket"])


async def test_websocket_streams_state_after_scene(api: ApiSite) -> None:
    staff = await api.client.ws_connect("/api/v1/ws", headers=api.auth("staff1"))
    tablet = await api.pair("room-b")
    tab = await api.client.ws_connect(f"/api/v1/ws?ticket={await ws_ticket(api, tablet['token'])}")
    try:
        hello = await staff.receive_json()
        assert hello["type"] == "hello" and len(hello["rooms"]) == 3
        tab_hello = await tab.receive_json()
        assert [r["room_id"] for r in tab_hello["rooms"]] == ["room-b"]
        resp = await api.client.post(
            "/api/v1/rooms/room-a/scenes/bright/activate", headers=api.auth("staff1")
        )
        assert resp.status == 200
        msg = await next_message(
            staff,
            lambda m: (
                m["type"] == "device_state"
                and m["data"]["device_id"] == "room-a/ceiling"
                and m["data"]["state"]["brightness"] == 80
            ),
        )
        assert msg["room_id"] == "room-a"
        await next_message(staff, lambda m: m["type"] == "scene")
        # The room-b tablet saw none of room-a; its own room's change does arrive.
        resp = await api.client.post(
            "/api/v1/rooms/room-b/scenes/day/activate",
            headers={"Authorization": f"Bearer {tablet['token']}"},
        )
        assert resp.status == 200
        seen = []
        msg = await next_message(
            tab,
            lambda m: seen.append(m) or m["type"] == "scene",  # type: ignore[func-returns-value]
        )
        assert all(m.get("room_id") == "room-b" for m in seen)
        assert any(
            m["type"] == "device_state" and m["data"]["device_id"] == "room-b/main" for m in seen
        )
    finally:
        await staff.close()
        await tab.close()


async def test_websocket_needs_auth_and_revocation_closes_it(api: ApiSite) -> None:
    resp = await api.client.get("/api/v1/ws")
    assert resp.status == 401
    tablet = await api.pair("room-a")
    ws = await api.client.ws_connect(f"/api/v1/ws?ticket={await ws_ticket(api, tablet['token'])}")
    try:
        assert (await ws.receive_json())["type"] == "hello"
        resp = await api.client.delete(
            f"/api/v1/tablets/{tablet['tablet_id']}", headers=api.auth("staff1")
        )
        assert resp.status == 200
        # A room event already on its way may arrive first; the close must follow.
        async with asyncio.timeout(5):
            msg = await ws.receive()
            while msg.type is aiohttp.WSMsgType.TEXT:
                assert json.loads(msg.data)["type"] != "hello"
                msg = await ws.receive()
        # The close frame carries the code the server sent. (ws.close_code can
        # read 1006 when the server drops the connection before the client's
        # automatic close reply is written.)
        assert msg.type is aiohttp.WSMsgType.CLOSE, (msg, ws.exception())
        assert msg.data == 4401, msg
    finally:
        await ws.close()


async def test_websocket_takes_a_one_time_ticket_never_a_token_in_the_url(
    api: ApiSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    tablet = await api.pair("room-a")
    # The long-lived token in a URL (logs, history, Referer) is refused.
    resp = await api.client.get(f"/api/v1/ws?token={tablet['token']}")
    assert resp.status == 401
    ticket = await ws_ticket(api, tablet["token"])
    assert tablet["token"] not in ticket
    ws = await api.client.ws_connect(f"/api/v1/ws?ticket={ticket}")
    try:
        hello = await ws.receive_json()
        assert hello["type"] == "hello" and [r["room_id"] for r in hello["rooms"]] == ["room-a"]
    finally:
        await ws.close()
    # Single use: the same ticket again is nobody.
    resp = await api.client.get(f"/api/v1/ws?ticket={ticket}")
    assert resp.status == 401
    # Revoking the tablet voids the tickets it was given.
    unused = await ws_ticket(api, tablet["token"])
    resp = await api.client.delete(
        f"/api/v1/tablets/{tablet['tablet_id']}", headers=api.auth("staff1")
    )
    assert resp.status == 200
    resp = await api.client.get(f"/api/v1/ws?ticket={unused}")
    assert resp.status == 401
    # An expired ticket (its lifetime cut to nothing) is nobody.
    other = await api.pair("room-b")
    monkeypatch.setattr(edge.api.auth, "WS_TICKET_TTL_S", 0.0)
    expired = await ws_ticket(api, other["token"])
    resp = await api.client.get(f"/api/v1/ws?ticket={expired}")
    assert resp.status == 401
    # No ticket without credentials.
    resp = await api.client.post("/api/v1/ws/ticket")
    assert resp.status == 401
