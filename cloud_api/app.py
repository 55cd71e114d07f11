"""The aiohttp application: routes, JSON errors, body limit, thread pool for the domain."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from cloud_api.admin_routes import ADMIN_ROUTES
from cloud_api.auth import Auth
from cloud_api.batching import Batcher
from cloud_api.group_commit import ORDERS_KEY, make_route_handler, place_orders
from cloud_api.metrics import METRICS_KEY, CloudMetrics, metrics_middleware
from cloud_api.openapi import build_openapi
from cloud_api.routes import ROUTES
from cloud_api.site import setup_site
from cloud_api.spec import (
    AUTH_KEY,
    EXECUTOR_KEY,
    SHOP_KEY,
    TOKENS_KEY,
)
from cloud_api.sync_routes import SYNC_ROUTES, register_sync
from edge.route_table import mount
from edge.shop import (
    Shop,
    ShopError,
    StorageFailure,
)

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 64 * 1024
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
               413: "body_too_large", 415: "unsupported_media_type"}  # fmt: skip


def error_response(status: int, code: str, message: str, field: str | None) -> web.Response:
    body = {"error": {"code": code, "field": field, "message": message}}
    return web.json_response(body, status=status)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# No versions in Server (aiohttp sends "Python/3.x aiohttp/3.y"): they only help
# someone shopping for exploits, on the internet-facing API and website alike.
SERVER = "coresync-cloud"


async def _server_header(_: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure is a JSON error naming the field; never a stack trace."""
    try:
        return await handler(request)
    except ShopError as exc:
        if isinstance(exc, StorageFailure):
            log.error("storage failure on %s %s: %s", request.method, request.path, exc)
        message = getattr(exc, "message", None) or str(exc)
        return error_response(exc.http_status, exc.code, message, exc.field)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        return error_response(exc.status, code, exc.reason, None)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error (logged)", None)


def build_app(
    shop: Shop, auth: Auth, *, workers: int = 16, compact_every_s: float = 0.0,
    retention_days: float = 30.0,
) -> web.Application:  # fmt: skip
    # Outermost: it sees the status json_errors turned every failure into.
    app = web.Application(
        middlewares=[metrics_middleware, json_errors], client_max_size=MAX_BODY_BYTES
    )
    app[METRICS_KEY] = CloudMetrics()
    app[SHOP_KEY] = shop
    app[AUTH_KEY] = auth
    document = build_openapi(ROUTES + ADMIN_ROUTES + SYNC_ROUTES)

    async def executor_ctx(app: web.Application) -> AsyncIterator[None]:
        pool = ThreadPoolExecutor(workers, thread_name_prefix="cloud-db")
        app[EXECUTOR_KEY] = pool
        app[TOKENS_KEY] = Batcher(auth.authenticate_many, pool)
        app[ORDERS_KEY] = Batcher(functools.partial(place_orders, auth, shop), pool)
        yield
        # Joining the pool's threads blocks: wait for them on another thread.
        await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(pool.shutdown, wait=True, cancel_futures=True)
        )

    app.cleanup_ctx.append(executor_ctx)
    app.on_response_prepare.append(_server_header)

    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get("/api/openapi.json", openapi)
    mount(app, ROUTES + ADMIN_ROUTES, make_route_handler)
    register_sync(app, compact_every_s, retention_days)
    setup_site(app)  # the members' website (HTML pages, not in the JSON route table)
    return app
