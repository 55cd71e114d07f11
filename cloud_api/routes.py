"""The cloud API's routes: members shop and ask the concierge; staff run both."""

from __future__ import annotations

from typing import Any

from cloud_api.spec import (
    ApproveInput,
    Ctx,
    EmptyInput,
    LoginInput,
    OrderListQuery,
    RequestListQuery,
    Route,
)
from cloud_api.sync_routes import SYNC_KEY
from edge.shop import Forbidden
from edge.shop.inputs import (
    AdjustInput,
    CatalogueQuery,
    ConciergeInput,
    CostInput,
    DeclineInput,
    MemberInput,
    OrderInput,
    OrderStatusInput,
    PaymentInput,
    ProductInput,
    ProductPatch,
    RequestStatusInput,
    RestockInput,
)


# ---- catalogue ----------------------------------------------------------------
async def list_products(c: Ctx) -> Any:
    return (await c.run(c.shop.list_products, c.query, site=c.site_scope)).to_json()


async def list_categories(c: Ctx) -> Any:
    return {"categories": await c.run(c.shop.categories)}


async def get_product(c: Ctx) -> Any:
    staff = c.me.kind == "staff"
    product = await c.run(
        c.shop.get_product, c.param("slug"), include_inactive=staff, site=c.site_scope
    )
    return product.to_json()


async def create_product(c: Ctx) -> Any:
    c.chain_only("the catalogue")
    return (await c.run(c.shop.create_product, c.body, actor=c.me.actor)).to_json()


async def update_product(c: Ctx) -> Any:
    c.chain_only("the catalogue")
    return (await c.run(c.shop.update_product, c.param("slug"), c.body, actor=c.me.actor)).to_json()


async def deactivate_product(c: Ctx) -> Any:
    c.chain_only("the catalogue")
    return (await c.run(c.shop.deactivate_product, c.param("slug"), actor=c.me.actor)).to_json()


def _own_site(c: Ctx, body: Any) -> Any:
    """Site-bound staff move their own site's stock (naming another is refused)."""
    scope = c.site_scope
    if scope is None:
        return body
    if body.site not in (None, scope):
        raise Forbidden(f"site: staff of {scope!r} may not move another site's stock")
    return body.model_copy(update={"site": scope})


async def restock(c: Ctx) -> Any:
    body = _own_site(c, c.body)
    return (await c.run(c.shop.restock, c.param("slug"), body, actor=c.me.actor)).to_json()


async def adjust(c: Ctx) -> Any:
    body = _own_site(c, c.body)
    return (await c.run(c.shop.adjust_stock, c.param("slug"), body, actor=c.me.actor)).to_json()


# ---- orders -------------------------------------------------------------------
async def create_order(c: Ctx) -> Any:
    # An app with group commit serves this route by cloud_api.group_commit instead.
    return (await c.run(c.shop.create_order, c.me.subject, c.body, actor=c.me.actor)).to_json()


def _list_args(c: Ctx) -> dict[str, Any]:
    q: OrderListQuery | RequestListQuery = c.query
    scope = c.member_scope
    return {
        "member_id": scope if scope is not None else q.member_id,
        "status": q.status,
        "site": c.site_scope,
        "page": q.page,
        "page_size": q.page_size,
    }


async def list_orders(c: Ctx) -> Any:
    return (await c.run(c.shop.list_orders, **_list_args(c))).to_json()


async def get_order(c: Ctx) -> Any:
    order = await c.run(
        c.shop.get_order, c.param("id"), member_id=c.member_scope, site=c.site_scope
    )
    return order.to_json()


async def _order_in_scope(c: Ctx) -> None:
    """Another site's order looks absent to a site's staff (404), before any change."""
    if c.site_scope is not None:
        await c.run(c.shop.get_order, c.param("id"), site=c.site_scope)


async def _request_in_scope(c: Ctx) -> None:
    if c.site_scope is not None:
        await c.run(c.shop.get_request, c.param("id"), site=c.site_scope)


async def cancel_order(c: Ctx) -> Any:
    await _order_in_scope(c)
    order = await c.run(
        c.shop.cancel_order, c.param("id"), member_id=c.member_scope, actor=c.me.actor
    )
    return order.to_json()


async def order_status(c: Ctx) -> Any:
    await _order_in_scope(c)
    return (await c.run(c.shop.set_order_status, c.param("id"), c.body, actor=c.me.actor)).to_json()


async def order_payment(c: Ctx) -> Any:
    await _order_in_scope(c)
    return (await c.run(c.shop.record_payment, c.param("id"), c.body)).to_json()


# ---- concierge ----------------------------------------------------------------
async def submit_request(c: Ctx) -> Any:
    return (await c.run(c.shop.submit_request, c.me.subject, c.body)).to_json()


async def list_requests(c: Ctx) -> Any:
    return (await c.run(c.shop.list_requests, **_list_args(c))).to_json()


async def get_request(c: Ctx) -> Any:
    req = await c.run(
        c.shop.get_request, c.param("id"), member_id=c.member_scope, site=c.site_scope
    )
    return req.to_json()


async def cancel_request(c: Ctx) -> Any:
    await _request_in_scope(c)
    req = await c.run(c.shop.cancel_request, c.param("id"), member_id=c.member_scope)
    return req.to_json()


async def approve_request(c: Ctx) -> Any:
    await _request_in_scope(c)
    notes = c.body.staff_notes
    req = await c.run(c.shop.approve_request, c.param("id"), staff_notes=notes, actor=c.me.actor)
    return req.to_json()


async def decline_request(c: Ctx) -> Any:
    await _request_in_scope(c)
    return (await c.run(c.shop.decline_request, c.param("id"), c.body, actor=c.me.actor)).to_json()


async def request_cost(c: Ctx) -> Any:
    await _request_in_scope(c)
    return (await c.run(c.shop.set_actual_cost, c.param("id"), c.body, actor=c.me.actor)).to_json()


async def verify_age(c: Ctx) -> Any:
    await _request_in_scope(c)
    return (await c.run(c.shop.verify_age, c.param("id"), actor=c.me.actor)).to_json()


async def request_status(c: Ctx) -> Any:
    await _request_in_scope(c)
    req = await c.run(c.shop.set_request_status, c.param("id"), c.body, actor=c.me.actor)
    return req.to_json()


# ---- accounts -----------------------------------------------------------------
async def login(c: Ctx) -> Any:
    token, role, expires = await c.run(c.auth.login, c.body.email, c.body.password)
    return {"token": token, "role": role, "expires_at": expires.isoformat()}


async def create_member(c: Ctx) -> Any:
    member = await c.run(c.shop.create_member, c.body)
    if c.site_scope is not None:  # a site's manager signs a member up at their spa
        await c.run(c.request.app[SYNC_KEY].enroll, member.id, c.site_scope, c.me.actor)
    token = await c.run(c.auth.issue_member_token, member.id)
    return {"member": member.to_json(), "token": token}


async def whoami(c: Ctx) -> Any:
    return {"kind": c.me.kind, "subject": c.me.subject, "role": c.me.role, "site": c.me.site}


PRODUCT = "shop/products/{slug}"
ORDER = "shop/orders/{id}"
REQUEST = "concierge/requests/{id}"

ROUTES: tuple[Route, ...] = (
    Route("POST", "auth/login", login, "public", "Staff login; returns a bearer token", LoginInput),
    Route("GET", "auth/whoami", whoami, "any", "The caller's identity"),
    Route("GET", "sync/whoami", whoami, "node", "Edge-node credential check"),
    Route("POST", "members", create_member, "manager", "Create a member and a token",
          MemberInput, status=201),
    Route("GET", "shop/products", list_products, "any", "Catalogue (active products)",
          query=CatalogueQuery),
    Route("GET", "shop/products/categories", list_categories, "any",
          "Categories with counts of active products"),
    Route("GET", PRODUCT, get_product, "any", "One product"),
    Route("POST", "shop/products", create_product, "manager", "Create a product",
          ProductInput, status=201),
    Route("PATCH", PRODUCT, update_product, "manager", "Change a product", ProductPatch),
    Route("DELETE", PRODUCT, deactivate_product, "manager", "Take a product off the catalogue"),
    Route("POST", PRODUCT + "/restock", restock, "staff", "Receive stock", RestockInput),
    Route("POST", PRODUCT + "/adjust", adjust, "staff", "Correct stock", AdjustInput),
    Route("POST", "shop/orders", create_order, "member", "Place a pickup order",
          OrderInput, status=201),
    Route("GET", "shop/orders", list_orders, "any", "Orders (members: their own)",
          query=OrderListQuery),
    Route("GET", ORDER, get_order, "any", "One order"),
    Route("POST", ORDER + "/cancel", cancel_order, "any", "Cancel (pending/processing)",
          EmptyInput),
    Route("POST", ORDER + "/status", order_status, "staff", "Advance an order",
          OrderStatusInput),
    Route("POST", ORDER + "/payment", order_payment, "staff", "Record a payment", PaymentInput),
    Route("POST", "concierge/requests", submit_request, "member", "Ask the concierge",
          ConciergeInput, status=201),
    Route("GET", "concierge/requests", list_requests, "any", "Requests (members: their own)",
          query=RequestListQuery),
    Route("GET", REQUEST, get_request, "any", "One request"),
    Route("POST", REQUEST + "/cancel", cancel_request, "any",
          "Cancel (pending/approved/processing)", EmptyInput),
    Route("POST", REQUEST + "/approve", approve_request, "staff", "Approve (pending only)",
          ApproveInput),
    Route("POST", REQUEST + "/decline", decline_request, "staff", "Decline with a reason",
          DeclineInput),
    Route("POST", REQUEST + "/cost", request_cost, "staff", "Set the actual cost", CostInput),
    Route("POST", REQUEST + "/verify-age", verify_age, "staff", "Record age verification",
          EmptyInput),
    Route("POST", REQUEST + "/status", request_status, "staff", "Advance a request",
          RequestStatusInput),
)  # fmt: skip
