"""``POST /api/v1/shop/orders`` by group commit (issue 13; docs/benchmarks.md).

A worker's concurrent order requests share one thread hop: their bearer
tokens are checked in one statement (``Auth.authenticate_many``) and their
orders written in one transaction (``Shop.create_orders``), in the same hop,
the token read just before the order is written.  What a request gets wrong
before that is judged as on any other route: its credentials first (401,
403), then its query and body (422).  The answer (201) is sent only once the
batch's transaction committed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cloud_api.auth import Auth, Principal
from cloud_api.batching import Batcher
from cloud_api.spec import (
    AUTH_KEY,
    EXECUTOR_KEY,
    Route,
    authenticate,
    bearer_token,
    dumps,
    make_handler,
    parse_query,
    read_body,
)
from edge.shop import Forbidden, Shop
from edge.shop.order_batch import OrderRequest, Outcome
from edge.shop.records import Order

# (bearer token, the parsed order) of one request
Placed = tuple[str, Any]
ORDERS_KEY = web.AppKey("orders", Batcher[Placed, Order])
GROUP_COMMITTED = ("POST", "shop/orders")


def place_orders(auth: Auth, shop: Shop, items: list[Placed]) -> list[Outcome]:
    """Blocking (the thread pool): each request's member, then all their orders at once."""
    who = auth.authenticate_many([token for token, _ in items])
    out: list[Outcome | None] = [None] * len(items)
    requests: list[OrderRequest] = []
    at: list[int] = []
    for k, (principal, (_, body)) in enumerate(zip(who, items, strict=True)):
        if not isinstance(principal, Principal):
            out[k] = principal
        elif principal.kind != "member":
            out[k] = Forbidden("members only")
        else:
            requests.append((principal.subject, body, principal.actor))
            at.append(k)
    for k, outcome in zip(at, shop.create_orders(requests), strict=True):
        out[k] = outcome
    return [o for o in out if o is not None]


def make_route_handler(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """``spec.make_handler``, but the order route by group commit when the app has one."""
    general = make_handler(route)
    if (route.method, route.path) != GROUP_COMMITTED:
        return general

    async def handle(request: web.Request) -> web.StreamResponse:
        orders = request.app.get(ORDERS_KEY)
        if orders is None:
            return await general(request)
        try:
            token = bearer_token(request)
            parse_query(request, route.query)
            body = await read_body(request, route.body)
        except Exception:
            # Credentials are judged first, as on every route: a bad token is a 401 even
            # with a bad body.
            app = request.app
            await authenticate(request, route.auth, app[AUTH_KEY], app[EXECUTOR_KEY])
            raise
        order = await orders.submit((token, body))
        return web.json_response(order.to_json(), status=route.status, dumps=dumps)

    handle.__name__ = route.handler.__name__
    return handle
