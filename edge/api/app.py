"""``create_app``: the aiohttp application of the LAN API and its pages."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from edge.api import db
from edge.api.access import guarded, is_public
from edge.api.auth import Auth, authenticate
from edge.api.errors import error_for
from edge.api.headers import security_headers
from edge.api.keys import AUTH, CORE, DATA_DIR, METRICS, OPENAPI, SETTINGS, WS_HUB
from edge.api.metrics import Metrics
from edge.api.routes import ROUTES, OpenApi
from edge.api.routes_auth import ensure_admin
from edge.api.settings import ApiSettings
from edge.api.ws import WsHub
from edge.core import EdgeCore
from edge.errors import StorageError
from edge.migrations import migrate
from edge.request_metrics import timed
from edge.route_table import mount

log = logging.getLogger(__name__)


def create_app(
    core: EdgeCore, *, data_dir: Path, settings: ApiSettings | None = None
) -> web.Application:
    """The LAN API for ``core``; ``data_dir`` receives the initial admin password file."""
    settings = settings or ApiSettings()
    metrics = Metrics()
    # One middleware (each is a layer on every request): it times the request
    # and, as plain calls in its frame, resolves the caller (edge.api.auth)
    # before the route's access rule judges it, turns every failure into a
    # JSON error (edge.api.errors) and puts the security headers on every
    # answer (edge.api.headers).
    middleware = timed(
        lambda request: metrics.http,
        prepare=authenticate,
        on_error=error_for,
        finish=security_headers,
    )
    app = web.Application(
        middlewares=[middleware],
        client_max_size=64 * 1024,
    )
    app[CORE] = core
    app[SETTINGS] = settings
    app[DATA_DIR] = Path(data_dir)
    app[AUTH] = Auth(core.store, settings)
    app[METRICS] = metrics
    app[WS_HUB] = WsHub(core, metrics)
    app[OPENAPI] = OpenApi(core.site_id)
    app.cleanup_ctx.append(_lifecycle)
    # Before the server waits for open handlers: a connected WebSocket would
    # otherwise hold shutdown until its heartbeat times out.
    app.on_shutdown.append(_close_websockets)

    mount(app, ROUTES, guarded, public=is_public)
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
