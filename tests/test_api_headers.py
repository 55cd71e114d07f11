"""Security headers on every kind of answer of the LAN API (set by its one
middleware, and by the WebSocket handler for the upgrade it prepares itself):
JSON, a page, a static file, a 404, a 405, an error raised by a handler and
the WebSocket upgrade.  A real site (Mosquitto, SQLite)."""

from __future__ import annotations

from multidict import CIMultiDictProxy

from tests.test_api_support import ApiSite, api

__all__ = ["api"]


def check(headers: CIMultiDictProxy[str], *, api_path: bool) -> None:
    assert headers["Server"] == "coresync-edge"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    if api_path:
        assert headers["Cache-Control"] == "no-store"
    else:
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]


async def test_every_kind_of_answer_carries_the_security_headers(api: ApiSite) -> None:
    staff = api.auth("staff1")
    answers = {
        "json": (await api.client.get("/api/v1/rooms/room-a", headers=staff), True, 200),
        "unauthenticated": (await api.client.get("/api/v1/rooms/room-a"), True, 401),
        "not found": (await api.client.get("/api/v1/nothing-here"), True, 404),
        "method": (await api.client.put("/api/v1/rooms", headers=staff), True, 405),
        "page": (await api.client.get("/tablet"), False, 200),
        "static": (await api.client.get("/static/common.js"), False, 200),
        "no file": (await api.client.get("/static/nothing.js"), False, 404),
    }
    for name, (resp, api_path, status) in answers.items():
        assert resp.status == status, name
        check(resp.headers, api_path=api_path)
    # A page keeps its own Cache-Control; the API's default does not override it.
    assert answers["page"][0].headers["Cache-Control"] == "no-cache"
    ws = await api.client.ws_connect("/api/v1/ws", headers=staff)
    try:
        assert ws._response.headers["Server"] == "coresync-edge"
        check(ws._response.headers, api_path=True)
        # No permessage-deflate: one event's bytes are not compressed per tablet.
        assert ws.compress == 0
        assert (await ws.receive_json())["type"] == "hello"
    finally:
        await ws.close()
