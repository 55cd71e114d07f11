"""Staff shop endpoints: products and stock alerts, members, the pickup queue
and the concierge queue (``/api/v1/shop/...``).

Staff only (tablets get 403).  Every ``Shop`` call runs on the shop's thread
pool via ``core.run_shop``.  Each change is audited (refusals too) and
published on the event bus as a ``"shop"`` event, so open dashboards refresh
over the WebSocket.  Shop refusals become JSON errors naming the field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from edge.api.auth import audit, principal
from edge.api.errors import ApiError, invalid_field
from edge.api.keys import BODY, CORE, QUERY
from edge.api.shop_models import (
    CounterOrderBody,
    CounterRequestBody,
    MembersQuery,
    OrdersQuery,
    RequestsQuery,
)
from edge.core import EdgeCore
from edge.shop import (
    ConciergeRequest,
    Conflict,
    Forbidden,
    Member,
    NotFound,
    NumbersExhausted,
    Order,
    Shop,
    ShopError,
    StorageFailure,
    ValidationFailed,
)
from edge.shop.directory import search_members, stock_alerts
from edge.shop.inputs import (
    CatalogueQuery,
    OrderStatusInput,
    PaymentInput,
)
from edge.shop.statuses import OrderStatus, RequestStatus, rules

T = TypeVar("T")
Record = Order | ConciergeRequest

OFFLINE_NUMBERS = (
    "shop temporarily unavailable offline: this controller has used all the order and "
    "request numbers the cloud leased it; try again once the cloud connection is back"
)
# Which request field an unknown id came from, by the shop's name for the thing.
_ID_FIELDS = {"order": "order_id", "concierge request": "request_id", "member": "member_id"}


def api_error(exc: ShopError) -> ApiError:
    """A shop refusal as a JSON error with a stable code and the field at fault."""
    if isinstance(exc, ValidationFailed):
        return invalid_field(exc)
    if isinstance(exc, NotFound):
        return ApiError("not_found", str(exc), field=_ID_FIELDS.get(exc.what, exc.what))
    if isinstance(exc, Forbidden):
        return ApiError("forbidden", str(exc), field="member_id")
    if isinstance(exc, StorageFailure):
        return ApiError("storage_unavailable", "the shop database is unavailable")
    message = OFFLINE_NUMBERS if isinstance(exc, NumbersExhausted) else str(exc)
    err = ApiError("conflict", message, field=exc.field)
    if isinstance(exc, Conflict):
        err.code = exc.code  # conflict, invalid_transition, out_of_stock, numbers_exhausted
    return err


def core_of(request: web.Request) -> EdgeCore:
    core: EdgeCore = request.app[CORE]
    return core


async def run(request: web.Request, fn: Callable[[Shop], T]) -> T:
    try:
        return await core_of(request).run_shop(fn)
    except ShopError as exc:
        raise api_error(exc) from None


def member_summary(member: Member) -> dict[str, Any]:
    return {"id": member.id, "name": member.name, "tier": member.tier, "active": member.active}


def _with_member(shop: Shop, records: list[Record]) -> list[dict[str, Any]]:
    """Records as JSON with the member's name and tier, for the queues."""
    members: dict[str, Member] = {}
    out = []
    for record in records:
        if record.member_id not in members:
            members[record.member_id] = shop.get_member(record.member_id)
        member = members[record.member_id]
        out.append({**record.to_json(), "member_name": member.name, "member_tier": member.tier})
    return out


async def view(request: web.Request, record: Record) -> dict[str, Any]:
    return (await run(request, lambda shop: _with_member(shop, [record])))[0]


async def change(
    request: web.Request,
    action: str,
    target: str,
    fn: Callable[[Shop], T],
    detail: dict[str, Any] | None = None,
) -> T:
    """Run one state change: audit it (refused or ok) and tell the dashboards."""
    try:
        result = await core_of(request).run_shop(fn)
    except ShopError as exc:
        await audit(request, action, target, "refused", {**(detail or {}), "reason": str(exc)})
        raise api_error(exc) from None
    if isinstance(result, Order | ConciergeRequest):
        target = result.number
        entity = "order" if isinstance(result, Order) else "concierge_request"
        core_of(request).events.publish(
            "shop",
            {"entity": entity, "action": action, "id": result.id, "number": result.number,
             "status": result.status},
        )  # fmt: skip
    await audit(request, action, target, "ok", detail)
    return result


# -- products, members, overview ------------------------------------------------------------
async def shop_rules(request: web.Request) -> web.Response:
    """Statuses, their next steps and tiers (edge.shop.statuses), so pages copy none."""
    return web.json_response(rules())


async def overview(request: web.Request) -> web.Response:

    def counts(shop: Shop) -> dict[str, Any]:
        alerts = stock_alerts(shop)
        return {
            "tax_rate": str(shop.config.tax_rate),
            "orders": {s: shop.list_orders(status=s, page_size=1).total for s in OrderStatus},
            "requests": {s: shop.list_requests(status=s, page_size=1).total for s in RequestStatus},
            "low_stock": sum(1 for p in alerts if p.in_stock),
            "out_of_stock": sum(1 for p in alerts if not p.in_stock),
        }

    return web.json_response(await run(request, counts))


async def list_products(request: web.Request) -> web.Response:
    query: CatalogueQuery = request[QUERY]
    page = await run(request, lambda shop: shop.list_products(query))
    return web.json_response(page.to_json())


async def low_stock(request: web.Request) -> web.Response:
    products = await run(request, stock_alerts)
    return web.json_response({"items": [p.to_json() for p in products]})


async def list_members(request: web.Request) -> web.Response:
    q: MembersQuery = request[QUERY]
    found = await run(
        request, lambda shop: search_members(shop, search=q.search, active=q.active, limit=q.limit)
    )
    return web.json_response({"items": [member_summary(m) for m in found]})


# -- pickup orders ---------------------------------------------------------------------------
async def list_orders(request: web.Request) -> web.Response:
    q: OrdersQuery = request[QUERY]

    def queue(shop: Shop) -> dict[str, Any]:
        page = shop.list_orders(status=q.status, page=q.page, page_size=q.page_size)
        return {**page.to_json(), "items": _with_member(shop, list(page.items))}

    return web.json_response(await run(request, queue))


async def create_order(request: web.Request) -> web.Response:
    who = principal(request)
    b: CounterOrderBody = request[BODY]
    order = await change(
        request,
        "shop.order.create",
        b.member_id,
        lambda shop: shop.create_order(b.member_id, b.order(), actor=str(who.actor)),
        {"member_id": b.member_id, "items": [i.model_dump() for i in b.items]},
    )
    return web.json_response(await view(request, order), status=201)


async def get_order(request: web.Request) -> web.Response:
    oid = request.match_info["order_id"]
    order = await run(request, lambda shop: shop.get_order(oid))
    return web.json_response(await view(request, order))


async def order_status(request: web.Request) -> web.Response:
    who = principal(request)
    oid = request.match_info["order_id"]
    b: OrderStatusInput = request[BODY]
    order = await change(
        request,
        "shop.order.status",
        oid,
        lambda shop: shop.set_order_status(oid, b, actor=str(who.actor)),
        {"status": b.status},
    )
    return web.json_response(await view(request, order))


async def cancel_order(request: web.Request) -> web.Response:
    who = principal(request)
    oid = request.match_info["order_id"]
    order = await change(
        request, "shop.order.cancel", oid, lambda shop: shop.cancel_order(oid, actor=str(who.actor))
    )
    return web.json_response(await view(request, order))


async def order_payment(request: web.Request) -> web.Response:
    oid = request.match_info["order_id"]
    b: PaymentInput = request[BODY]
    order = await change(
        request,
        "shop.order.payment",
        oid,
        lambda shop: shop.record_payment(oid, b),
        {"payment_ref": b.payment_ref},
    )
    return web.json_response(await view(request, order))


# -- concierge requests -----------------------------------------------------------------------
async def list_requests(request: web.Request) -> web.Response:
    q: RequestsQuery = request[QUERY]

    def queue(shop: Shop) -> dict[str, Any]:
        page = shop.list_requests(status=q.status, page=q.page, page_size=q.page_size)
        return {**page.to_json(), "items": _with_member(shop, list(page.items))}

    return web.json_response(await run(request, queue))


async def create_request(request: web.Request) -> web.Response:
    b: CounterRequestBody = request[BODY]
    req = await change(
        request,
        "shop.request.create",
        b.member_id,
        lambda shop: shop.submit_request(b.member_id, b.request()),
        {"member_id": b.member_id, "request_type": b.request_type},
    )
    return web.json_response(await view(request, req), status=201)


async def get_request(request: web.Request) -> web.Response:
    rid = request.match_info["request_id"]
    req = await run(request, lambda shop: shop.get_request(rid))
    return web.json_response(await view(request, req))


def request_action(
    action: str, call: Callable[[Shop, str, Any, str], Any]
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler of ``POST .../requests/{request_id}/<step>``: ``call(shop, id, body, actor)``
    with the body its route declares (None without one)."""

    async def handler(request: web.Request) -> web.Response:
        who = principal(request)
        rid = request.match_info["request_id"]
        parsed = request.get(BODY)
        detail = None if parsed is None else parsed.model_dump(mode="json")
        req = await change(
            request, action, rid, lambda shop: call(shop, rid, parsed, str(who.actor)), detail
        )
        return web.json_response(await view(request, req))

    handler.__name__ = action.replace(".", "_")
    return handler


approve_request = request_action(
    "shop.request.approve",
    lambda shop, rid, b, actor: shop.approve_request(rid, staff_notes=b.staff_notes, actor=actor),
)  # fmt: skip
decline_request = request_action(
    "shop.request.decline",
    lambda shop, rid, b, actor: shop.decline_request(rid, b, actor=actor),
)  # fmt: skip
set_request_cost = request_action(
    "shop.request.cost",
    lambda shop, rid, b, actor: shop.set_actual_cost(rid, b, actor=actor),
)  # fmt: skip
verify_age = request_action(
    "shop.request.verify_age",
    lambda shop, rid, b, actor: shop.verify_age(rid, actor=actor),
)  # fmt: skip
request_status = request_action(
    "shop.request.status",
    lambda shop, rid, b, actor: shop.set_request_status(rid, b, actor=actor),
)  # fmt: skip
cancel_request = request_action(
    "shop.request.cancel",
    lambda shop, rid, b, actor: shop.cancel_request(rid),
)  # fmt: skip
