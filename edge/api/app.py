"""``create_app``: the aiohttp application of the LAN API and its pages."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web

from edge.api import db
from edge.api.auth import Auth, auth_middleware
from edge.api.errors import error_middleware
from edge.api.keys import AUTH, CORE, DATA_DIR, METRICS, OPENAPI, SETTINGS, WS_HUB
from edge.api.metrics import Metrics, metrics_handler, metrics_middleware
from edge.api.openapi import openapi_document
from edge.api.routes_auth import ensure_admin
from edge.api.routes_auth import routes as auth_routes
from edge.api.routes_door import routes as door_routes
from edge.api.routes_rooms import routes as room_routes
from edge.api.routes_shop import routes as shop_routes
from edge.api.routes_sync import routes as sync_routes
from edge.api.routes_tablets import routes as tablet_routes
from edge.api.settings import ApiSettings
from edge.api.ws import WsHub, websocket
from edge.core import EdgeCore
from edge.errors import StorageError
from edge.health import site_health
from edge.migrations import migrate
from edge.supervisor import supervisor_for

log = logging.getLogger(__name__)


def create_app(
    core: EdgeCore, *, data_dir: Path, settings: ApiSettings | None = None
) -> web.Application:
    """The LAN API for ``core``; ``data_dir`` receives the initial admin password file."""
    settings = settings or ApiSettings()
    app = web.Application(
        middlewares=[metrics_middleware, error_middleware, auth_middleware],
        client_max_size=64 * 1024,
    )
    metrics = Metrics()
    app[CORE] = core
    app[SETTINGS] = settings
    app[DATA_DIR] = Path(data_dir)
    app[AUTH] = Auth(core.store, settings)
    app[METRICS] = metrics
    app[WS_HUB] = WsHub(core, metrics)
    app[OPENAPI] = openapi_document(core.site_id)
    app.cleanup_ctx.append(_lifecycle)
    # Before the server waits for open handlers: a connected WebSocket would
    # otherwise hold shutdown until its heartbeat times out.
    app.on_shutdown.append(_close_websockets)
    app.on_response_prepare.append(_security_headers)

    app.add_routes(auth_routes)
    app.add_routes(room_routes)
    app.add_routes(tablet_routes)
    app.add_routes(shop_routes)
    app.add_routes(door_routes)
    app.add_routes(sync_routes)
    app.router.add_get("/api/v1/ws", websocket)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/api/openapi.json", openapi_json)

    web_dir = settings.web_dir
    app.router.add_get("/", _page(web_dir / "dashboard.html"))
    app.router.add_get("/dashboard", _page(web_dir / "dashboard.html"))
    app.router.add_get("/tablet", _page(web_dir / "tablet.html"))
    if web_dir.is_dir():
        app.router.add_static("/static", web_dir, follow_symlinks=False)
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    core: EdgeCore = app[CORE]
    try:
        await core.store.call(lambda conn: migrate(conn, "api", db.API_MIGRATIONS))
        await ensure_admin(core.store, app[AUTH], app[DATA_DIR])
    except StorageError as exc:
        # A full or broken disk: serve anyway (health, metrics, pages); every
        # route that needs edge.db answers 503 naming the cause meanwhile.
        log.error("LAN API starts degraded, edge.db unavailable: %s", exc)
    hub: WsHub = app[WS_HUB]
    hub.start()
    app[METRICS].start(core)
    try:
        yield
    finally:
        await app[METRICS].stop()
        await hub.stop()


async def _close_websockets(app: web.Application) -> None:
    await app[WS_HUB].close_all()


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    # No versions in Server: they only help someone shopping for exploits.
    response.headers["Server"] = "coresync-edge"
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    else:
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
            "frame-ancestors 'none'",
        )


async def healthz(request: web.Request) -> web.Response:
    """200 only when every component, database, disk and link is well; the body
    names each part and its state, and ``problems`` lists what is not."""
    core: EdgeCore = request.app[CORE]
    ok, body = await site_health(core, supervisor_for(core), request.app[DATA_DIR])
    return web.json_response(body, status=200 if ok else 503)


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


def _page(path: Path) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def page(request: web.Request) -> web.StreamResponse:
        # FileResponse reads the file in an executor; a missing page becomes a 404.
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    return page
