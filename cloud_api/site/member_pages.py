"""My orders, the concierge, my account and data rights, and the legal pages."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from aiohttp import web

from cloud_api.site import store
from cloud_api.site.web import (
    Me,
    current,
    field_errors,
    member_page,
    render,
    run,
    shop_of,
    status_of,
)
from cloud_api.sync_routes import SYNC_KEY
from edge.door.config import THREE_YEARS_DAYS, DoorConfig
from edge.shop import ShopError, ValidationFailed
from edge.shop.inputs import RequestType
from edge.shop.records import jsonable
from edge.shop.statuses import CONCIERGE_TIERS, ORDER_CANCELLABLE, REQUEST_CANCELLABLE
from sync.sites import list_sites

REQUEST_TYPES: tuple[str, ...] = RequestType.__args__  # type: ignore[attr-defined]
# The door's template retention, as configured by default (and its ceiling):
# the privacy policy's published schedule is derived from it, never typed twice.
RETENTION_DAYS: int = DoorConfig.model_fields["retention_days"].default
CONCIERGE_FIELDS = ("request_type", "title", "description", "product_link", "budget_min",
                    "budget_max", "preferred_pickup_date")  # fmt: skip


def _page_number(request: web.Request) -> int:
    raw = request.query.get("page", "1")
    if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
        raise ValidationFailed("page", "a page number from 1")
    return int(raw)


# ---- orders ------------------------------------------------------------------------------
@member_page
async def orders(request: web.Request, me: Me) -> web.StreamResponse:
    return await _orders_page(request, me)


async def _orders_page(
    request: web.Request, me: Me, status: int = 200, errors: dict[str, str] | None = None
) -> web.Response:
    page = _page_number(request)
    found = await run(request, shop_of(request).list_orders, member_id=me.member.id, page=page)
    pages = max(1, -(-found.total // found.page_size))
    return render(request, "orders.html", me, status, orders=found.items, page=page,
                  pages=pages, cancellable=ORDER_CANCELLABLE, errors=errors or {},
                  placed=request.query.get("placed", "")[:20])  # fmt: skip


@member_page
async def order_detail(request: web.Request, me: Me) -> web.StreamResponse:
    order = await run(
        request, shop_of(request).get_order, request.match_info["id"], member_id=me.member.id
    )
    return render(request, "order.html", me, order=order, cancellable=ORDER_CANCELLABLE)


@member_page
async def order_cancel(request: web.Request, me: Me) -> web.StreamResponse:
    try:
        await run(request, shop_of(request).cancel_order, request.match_info["id"],
                  member_id=me.member.id, actor=f"member:{me.member.id}")  # fmt: skip
    except ShopError as exc:
        if status_of(exc) == 404:
            raise
        return await _orders_page(request, me, status_of(exc), {"form": str(exc)})
    raise web.HTTPSeeOther("/orders")


# ---- concierge -----------------------------------------------------------------------------
async def _concierge_page(
    request: web.Request, me: Me, status: int = 200, errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> web.Response:  # fmt: skip
    shop = shop_of(request)
    page = _page_number(request)
    found = await run(request, shop.list_requests, member_id=me.member.id, page=page)
    earliest = await run(request, lambda: shop.today() + timedelta(shop.config.concierge_lead_days))
    allowed = me.member.active and me.member.tier in CONCIERGE_TIERS
    return render(
        request, "concierge.html", me, status, errors=errors or {}, values=values or {},
        requests=found.items, page=page, pages=max(1, -(-found.total // found.page_size)),
        allowed=allowed, earliest=earliest.isoformat(), types=REQUEST_TYPES,
        cancellable=REQUEST_CANCELLABLE,
    )  # fmt: skip


@member_page
async def concierge(request: web.Request, me: Me) -> web.StreamResponse:
    return await _concierge_page(request, me)


@member_page
async def concierge_submit(request: web.Request, me: Me) -> web.StreamResponse:
    assert me.form is not None
    values = {k: str(me.form.get(k, "")).strip() for k in CONCIERGE_FIELDS}
    # Empty optional fields are absent; the shop's own input model judges the rest.
    data: dict[str, Any] = {k: v for k, v in values.items() if v or k in ("title", "description")}
    try:
        await run(request, shop_of(request).submit_request, me.member.id, data)
    except ShopError as exc:
        return await _concierge_page(request, me, status_of(exc), field_errors(exc), values)
    raise web.HTTPSeeOther("/concierge")


@member_page
async def concierge_cancel(request: web.Request, me: Me) -> web.StreamResponse:
    try:
        await run(request, shop_of(request).cancel_request, request.match_info["id"],
                  member_id=me.member.id)  # fmt: skip
    except ShopError as exc:
        if status_of(exc) == 404:
            raise
        return await _concierge_page(request, me, status_of(exc), {"form": str(exc)})
    raise web.HTTPSeeOther("/concierge")


# ---- account and data rights ----------------------------------------------------------------
async def _account_page(
    request: web.Request, me: Me, status: int = 200, errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None, notice: str = "",
) -> web.Response:  # fmt: skip
    db = shop_of(request).db
    consent = await run(request, store.consent_of, db, me.member.id)
    deletions = await run(request, store.deletion_requests, db, me.member.id)
    return render(request, "account.html", me, status, errors=errors or {},
                  values=values or {"name": me.member.name, "phone": me.member.phone},
                  consent=consent, deletions=deletions, notice=notice or
                  request.query.get("done", "")[:40])  # fmt: skip


@member_page
async def account(request: web.Request, me: Me) -> web.StreamResponse:
    return await _account_page(request, me)


@member_page
async def profile(request: web.Request, me: Me) -> web.StreamResponse:
    assert me.form is not None
    values = {k: str(me.form.get(k, "")).strip() for k in ("name", "phone")}
    try:
        me.member = await run(request, shop_of(request).update_profile, me.member.id, values)
    except ShopError as exc:
        return await _account_page(request, me, status_of(exc), field_errors(exc), values)
    raise web.HTTPSeeOther("/account?done=profile")


@member_page
async def export(request: web.Request, me: Me) -> web.StreamResponse:
    """Everything the cloud holds about me; no biometric data exists here to include."""
    shop = shop_of(request)

    def collect() -> dict[str, Any]:
        def every(list_fn: Any) -> list[Any]:
            found, page = [], 1
            while True:
                batch = list_fn(member_id=me.member.id, page=page, page_size=100)
                found += batch.items
                if page * 100 >= batch.total:
                    return found
                page += 1

        return {
            "member": shop.get_member(me.member.id),
            "orders": every(shop.list_orders),
            "concierge_requests": every(shop.list_requests),
            "face_access_consent": store.consent_of(shop.db, me.member.id),
            "deletion_requests": store.deletion_requests(shop.db, me.member.id),
            **store.cloud_records(shop.db, me.member.id),
            "biometric_data": "none: face templates never leave the spa's device",
        }

    body = json.dumps(jsonable(await run(request, collect)), indent=2, sort_keys=True)
    return web.Response(
        text=body, content_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="my-coresync-data.json"',
                 "Cache-Control": "no-store"},
    )  # fmt: skip


@member_page
async def withdraw_consent(request: web.Request, me: Me) -> web.StreamResponse:
    # The sync path's own consent change: the spa's edge learns it on its next
    # pull and its member hook destroys the templates there.
    await run(request, request.app[SYNC_KEY].set_consent, me.member.id, False)
    raise web.HTTPSeeOther("/account?done=consent")


@member_page
async def request_deletion(request: web.Request, me: Me) -> web.StreamResponse:
    assert me.form is not None
    typed = str(me.form.get("confirm_email", "")).strip().lower()
    if typed != me.member.email.lower():
        errors = {"confirm_email": "Type the email address of this account to confirm."}
        return await _account_page(request, me, 422, errors)
    await run(request, store.request_deletion, shop_of(request).db, me.member.id, me.member.email)
    raise web.HTTPSeeOther("/account?done=deletion")


# ---- legal pages (public) -----------------------------------------------------------------
async def legal(request: web.Request) -> web.StreamResponse:
    name = request.path.strip("/")
    db = shop_of(request).db

    def load() -> list[dict[str, Any]]:
        contacts = store.contacts(db)
        return [{"name": s.name, **contacts.get(s.id, {})} for s in list_sites(db)]

    sites = await run(request, load)
    me = await current(request)
    return render(request, f"{name}.html", me, sites=sites, retention_days=RETENTION_DAYS,
                  retention_max_days=THREE_YEARS_DAYS)  # fmt: skip
