"""Staff shop endpoints over the real LAN API: a real EdgeService with its shop
on a real SQLite file, seeded with the demo catalogue and members."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import date, timedelta
from typing import Any

import aiohttp
import pytest

from edge.shop import Member
from edge.shop.demo_seed import seed_demo_shop
from tests.test_api_support import ApiSite, api
from tests.test_route_table import refs

__all__ = ["api"]

SHOP = "/api/v1/shop"


@pytest.fixture
async def shop_site(api: ApiSite) -> ApiSite:
    await api.core.run_shop(seed_demo_shop)
    return api


async def members(api: ApiSite) -> dict[str, Member]:
    found: dict[str, Member] = await api.core.run_shop(seed_demo_shop)  # idempotent
    return found


async def call(
    api: ApiSite, method: str, path: str, who: str = "staff1", status: int = 200, **kw: Any
) -> Any:
    resp = await api.client.request(method, SHOP + path, headers=api.auth(who), **kw)
    text = await resp.text()
    assert resp.status == status, text
    return await resp.json()


async def refused(
    api: ApiSite, method: str, path: str, status: int, code: str, field: str | None, **kw: Any
) -> dict[str, Any]:
    body = await call(api, method, path, status=status, **kw)
    assert body["error"]["code"] == code, body
    assert body["error"]["field"] == field, body
    return dict(body["error"])


async def stock(api: ApiSite, slug: str) -> int:
    product = await api.core.run_shop(lambda shop: shop.get_product(slug))
    return product.stock


async def audit_actions(api: ApiSite) -> list[tuple[str, str]]:
    resp = await api.client.get("/api/v1/audit?action=", headers=api.auth("manager1"))
    entries = (await resp.json())["entries"]
    return [(e["action"], e["result"]) for e in entries if e["action"].startswith("shop.")]


def pickup_in(days: int) -> str:
    return (date.today() + timedelta(days=days)).isoformat()


# -- catalogue and members ---------------------------------------------------------------------
async def test_seed_is_idempotent_and_matches_the_cloud_demo(shop_site: ApiSite) -> None:
    again = await members(shop_site)
    assert sorted(m.tier for m in again.values()) == ["basic", "premium", "unlimited"]
    page = await call(shop_site, "GET", "/products?page_size=100")
    assert page["total"] == 13
    assert await shop_site.core.run_shop(lambda s: s.ledger_mismatches()) == []


async def test_products_carry_stock_flags_and_low_stock_lists_emptiest_first(
    shop_site: ApiSite,
) -> None:
    page = await call(shop_site, "GET", "/products?category=skincare")
    by_slug = {p["slug"]: p for p in page["items"]}
    mask = by_slug["charcoal-clay-mask"]
    assert (mask["stock"], mask["in_stock"], mask["low_stock"]) == (3, True, True)
    assert by_slug["rose-hip-serum"]["low_stock"] is False
    assert by_slug["rose-hip-serum"]["member_price"] == "54.40"
    low = await call(shop_site, "GET", "/products/low-stock")
    assert [p["slug"] for p in low["items"]] == [
        "ashwagandha",
        "gua-sha-stone",
        "charcoal-clay-mask",
        "infrared-sauna-blanket",
    ]
    assert low["items"][0]["in_stock"] is False
    found = await call(shop_site, "GET", "/products?search=jade")
    assert [p["slug"] for p in found["items"]] == ["jade-roller"]
    overview = await call(shop_site, "GET", "/overview")
    assert (overview["low_stock"], overview["out_of_stock"]) == (3, 1)
    assert overview["tax_rate"] == "0.08"
    await refused(shop_site, "GET", "/products?category=shoes", 422, "invalid_field", "category")


async def test_members_list_and_search_show_only_name_tier_active(shop_site: ApiSite) -> None:
    listed = await call(shop_site, "GET", "/members")
    assert [m["name"] for m in listed["items"]] == ["Ava Premium", "Ben Basic", "Cleo Unlimited"]
    assert set(listed["items"][0]) == {"id", "name", "tier", "active"}
    found = await call(shop_site, "GET", "/members?search=cle")
    assert [(m["name"], m["tier"]) for m in found["items"]] == [("Cleo Unlimited", "unlimited")]
    assert (await call(shop_site, "GET", "/members?active=false"))["items"] == []
    await refused(shop_site, "GET", "/members?limit=0", 422, "invalid_field", "limit")
    await refused(shop_site, "GET", "/members?colour=red", 422, "invalid_field", "colour")


async def test_tablets_and_strangers_are_refused_everywhere(shop_site: ApiSite) -> None:
    tablet = await shop_site.pair("room-a")
    headers = {"Authorization": f"Bearer {tablet['token']}"}
    paths = [
        ("GET", "/overview"),
        ("GET", "/products"),
        ("GET", "/products/low-stock"),
        ("GET", "/members"),
        ("GET", "/orders"),
        ("POST", "/orders"),
        ("GET", "/orders/abc"),
        ("POST", "/orders/abc/status"),
        ("POST", "/orders/abc/cancel"),
        ("POST", "/orders/abc/payment"),
        ("GET", "/concierge/requests"),
        ("POST", "/concierge/requests"),
        ("GET", "/concierge/requests/abc"),
        *(
            ("POST", f"/concierge/requests/abc/{action}")
            for action in ("approve", "decline", "cost", "verify-age", "status", "cancel")
        ),
    ]
    for method, path in paths:
        resp = await shop_site.client.request(method, SHOP + path, headers=headers, json={})
        assert resp.status == 403, (method, path)
        assert (await resp.json())["error"]["code"] == "forbidden"
        resp = await shop_site.client.request(method, SHOP + path, json={})
        assert resp.status == 401, (method, path)


# -- pickup orders -----------------------------------------------------------------------------
async def test_counter_order_lifecycle_with_member_prices_audit_and_stock(
    shop_site: ApiSite,
) -> None:
    ava = (await members(shop_site))["ava@example.com"]
    order = await call(
        shop_site,
        "POST",
        "/orders",
        status=201,
        json={
            "member_id": ava.id,
            "items": [{"product": "rose-hip-serum", "quantity": 2}],
            "pickup_date": pickup_in(1),
            "customer_notes": "gift wrap please",
        },
    )
    assert order["number"].startswith(f"PO-{date.today().year}-")
    assert order["items"][0]["unit_price"] == "54.40"  # member price: membership active
    assert (order["subtotal"], order["tax"], order["total"]) == ("108.80", "8.70", "117.50")
    assert (order["status"], order["member_name"]) == ("pending", "Ava Premium")
    assert await stock(shop_site, "rose-hip-serum") == 22
    oid = order["id"]
    queue = await call(shop_site, "GET", "/orders?status=pending")
    assert [o["id"] for o in queue["items"]] == [oid]
    await refused(
        shop_site, "POST", f"/orders/{oid}/status", 409, "invalid_transition", "status",
        json={"status": "ready"},
    )  # fmt: skip
    for status in ("processing", "ready"):
        moved = await call(shop_site, "POST", f"/orders/{oid}/status", json={"status": status})
        assert moved["status"] == status
    paid = await call(shop_site, "POST", f"/orders/{oid}/payment", json={"payment_ref": "pi_123"})
    assert paid["payment_ref"] == "pi_123" and paid["paid_at"]
    await refused(
        shop_site, "POST", f"/orders/{oid}/payment", 409, "conflict", "payment_ref",
        json={"payment_ref": "pi_456"},
    )  # fmt: skip
    # Ready is past the point of cancelling.
    await refused(shop_site, "POST", f"/orders/{oid}/cancel", 409, "invalid_transition", "status")
    done = await call(
        shop_site,
        "POST",
        f"/orders/{oid}/status",
        json={"status": "completed", "staff_notes": "ok"},
    )
    assert (done["status"], done["staff_notes"]) == ("completed", "ok")
    assert (await call(shop_site, "GET", f"/orders/{oid}"))["status"] == "completed"
    await refused(shop_site, "GET", "/orders/nosuchorder", 404, "not_found", "order_id")
    actions = await audit_actions(shop_site)
    assert ("shop.order.create", "ok") in actions
    assert ("shop.order.status", "refused") in actions
    assert ("shop.order.payment", "ok") in actions


async def test_cancel_restores_stock_and_lapsed_members_pay_the_regular_price(
    shop_site: ApiSite,
) -> None:
    ben = (await members(shop_site))["ben@example.com"]
    await shop_site.core.run_shop(lambda s: s.set_membership(ben.id, tier="basic", active=False))
    order = await call(
        shop_site, "POST", "/orders", status=201,
        json={"member_id": ben.id, "items": [{"product": "jade-roller", "quantity": 3},
                                             {"product": "gua-sha-stone", "quantity": 2}]},
    )  # fmt: skip
    assert [i["unit_price"] for i in order["items"]] == ["38.00", "34.00"]
    assert await stock(shop_site, "gua-sha-stone") == 0
    await call(shop_site, "POST", f"/orders/{order['id']}/status", json={"status": "processing"})
    cancelled = await call(shop_site, "POST", f"/orders/{order['id']}/cancel")
    assert cancelled["status"] == "cancelled"
    assert (await stock(shop_site, "jade-roller"), await stock(shop_site, "gua-sha-stone")) == (
        30,
        2,
    )
    await refused(
        shop_site, "POST", f"/orders/{order['id']}/cancel", 409, "invalid_transition", "status"
    )
    assert ("shop.order.cancel", "ok") in await audit_actions(shop_site)


async def test_bad_order_input_is_a_422_naming_the_field(shop_site: ApiSite) -> None:
    ava = (await members(shop_site))["ava@example.com"]
    line = {"product": "jade-roller", "quantity": 1}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"member_id": ava.id, "items": [line], "colour": "red"}, "colour"),
        ({"member_id": ava.id, "items": [{**line, "quantity": "2"}]}, "items[0].quantity"),
        ({"member_id": ava.id, "items": [{**line, "quantity": 0}]}, "items[0].quantity"),
        ({"member_id": ava.id, "items": [{**line, "sku": 1}]}, "items[0].sku"),
        ({"member_id": ava.id, "items": []}, "items"),
        ({"member_id": ava.id, "items": [line, line]}, "items"),
        ({"member_id": ava.id, "items": [{**line, "product": "nope"}]}, "items[0].product"),
        ({"member_id": ava.id, "items": [line], "pickup_date": pickup_in(-1)}, "pickup_date"),
        ({"items": [line]}, "member_id"),
    ]
    for payload, field in cases:
        await refused(shop_site, "POST", "/orders", 422, "invalid_field", field, json=payload)
    await refused(
        shop_site, "POST", "/orders", 404, "not_found", "member_id",
        json={"member_id": "nosuchmember", "items": [line]},
    )  # fmt: skip
    err = await refused(
        shop_site, "POST", "/orders", 409, "out_of_stock", "items[0].quantity",
        json={"member_id": ava.id, "items": [{"product": "gua-sha-stone", "quantity": 3}]},
    )  # fmt: skip
    assert "2 in stock" in err["message"]
    resp = await shop_site.client.post(
        SHOP + "/orders", data=b"{not json", headers=shop_site.auth("staff1")
    )
    assert resp.status == 400 and (await resp.json())["error"]["field"] == "body"
    await refused(shop_site, "GET", "/orders?status=lost", 422, "invalid_field", "status")
    await refused(shop_site, "GET", "/orders?page=0", 422, "invalid_field", "page")
    await refused(
        shop_site, "POST", "/orders/abc/status", 422, "invalid_field", "status",
        json={"status": "shipped"},
    )  # fmt: skip
    assert await stock(shop_site, "gua-sha-stone") == 2  # nothing half-done


async def test_offline_without_numbers_says_the_shop_is_temporarily_unavailable(
    shop_site: ApiSite,
) -> None:
    ava = (await members(shop_site))["ava@example.com"]
    shop = shop_site.core.shop
    assert shop is not None
    # An edge that spends cloud-leased blocks and holds none (offline, leases used up).
    shop.config = dataclasses.replace(shop.config, number_authority=False)
    err = await refused(
        shop_site, "POST", "/orders", 409, "numbers_exhausted", None,
        json={"member_id": ava.id, "items": [{"product": "jade-roller", "quantity": 1}]},
    )  # fmt: skip
    assert err["message"].startswith("shop temporarily unavailable offline")
    assert await stock(shop_site, "jade-roller") == 30


# -- concierge ---------------------------------------------------------------------------------
def concierge_body(member_id: str, **over: Any) -> dict[str, Any]:
    return {
        "member_id": member_id,
        "request_type": "premium_alcohol",
        "title": "Krug Grande Cuvée",
        "description": "One bottle, chilled, for an anniversary.",
        "budget_min": "180.00",
        "budget_max": 260,
        "preferred_pickup_date": pickup_in(5),
        **over,
    }


async def test_concierge_lifecycle_budget_and_age_check(shop_site: ApiSite) -> None:
    ava = (await members(shop_site))["ava@example.com"]
    req = await call(
        shop_site, "POST", "/concierge/requests", status=201, json=concierge_body(ava.id)
    )
    rid = req["id"]
    assert req["number"].startswith("CR-") and req["status"] == "pending"
    assert (req["budget_min"], req["budget_max"], req["within_budget"]) == (
        "180.00",
        "260.00",
        None,
    )
    queue = await call(shop_site, "GET", "/concierge/requests?status=pending")
    assert [(r["id"], r["member_name"]) for r in queue["items"]] == [(rid, "Ava Premium")]
    approved = await call(
        shop_site, "POST", f"/concierge/requests/{rid}/approve", json={"staff_notes": "call Krug"}
    )
    assert approved["status"] == "approved" and approved["reviewed_at"]
    await refused(
        shop_site, "POST", f"/concierge/requests/{rid}/approve", 409, "invalid_transition",
        "status",
        json={},
    )  # fmt: skip
    await refused(
        shop_site, "POST", f"/concierge/requests/{rid}/decline", 409, "invalid_transition",
        "status",
        json={"reason": "too late"},
    )  # fmt: skip
    over = await call(
        shop_site, "POST", f"/concierge/requests/{rid}/cost", json={"actual_cost": 300}
    )
    assert (over["actual_cost"], over["within_budget"]) == ("300.00", False)
    cost = await call(
        shop_site, "POST", f"/concierge/requests/{rid}/cost", json={"actual_cost": "215.50"}
    )
    assert (cost["actual_cost"], cost["within_budget"]) == ("215.50", True)
    for status in ("processing", "ready"):
        moved = await call(
            shop_site, "POST", f"/concierge/requests/{rid}/status", json={"status": status}
        )
        assert moved["status"] == status
    await refused(
        shop_site, "POST", f"/concierge/requests/{rid}/status", 409, "conflict", "age_verified",
        json={"status": "completed"},
    )  # fmt: skip
    verified = await call(shop_site, "POST", f"/concierge/requests/{rid}/verify-age")
    assert verified["age_verified_by"] == "staff:staff1"
    done = await call(
        shop_site, "POST", f"/concierge/requests/{rid}/status", json={"status": "completed"}
    )
    assert done["status"] == "completed" and done["completed_at"]
    await refused(
        shop_site, "POST", f"/concierge/requests/{rid}/cancel", 409, "invalid_transition", "status"
    )
    actions = await audit_actions(shop_site)
    assert ("shop.request.verify_age", "ok") in actions
    assert ("shop.request.status", "refused") in actions


async def test_decline_cancel_and_refusals(shop_site: ApiSite) -> None:
    m = await members(shop_site)
    ben, cleo = m["ben@example.com"], m["cleo@example.com"]
    err = await refused(
        shop_site, "POST", "/concierge/requests", 403, "forbidden", "member_id",
        json=concierge_body(ben.id),
    )  # fmt: skip
    assert "Premium and Unlimited" in err["message"]
    assert ("shop.request.create", "refused") in await audit_actions(shop_site)
    bad: list[tuple[dict[str, Any], str]] = [
        ({"budget_min": 300}, "budget_min"),
        ({"preferred_pickup_date": pickup_in(1)}, "preferred_pickup_date"),
        ({"request_type": "cars"}, "request_type"),
        ({"title": "   "}, "title"),
        ({"product_link": "not a url"}, "product_link"),
        ({"budget_max": True}, "budget_max"),
        ({"urgent": True}, "urgent"),
    ]
    for over, field in bad:
        await refused(
            shop_site, "POST", "/concierge/requests", 422, "invalid_field", field,
            json=concierge_body(cleo.id, **over),
        )  # fmt: skip
    flowers = concierge_body(cleo.id, request_type="fresh_flowers", title="Peonies")
    first = await call(shop_site, "POST", "/concierge/requests", status=201, json=flowers)
    await refused(
        shop_site, "POST", f"/concierge/requests/{first['id']}/decline", 422, "invalid_field",
        "reason", json={},
    )  # fmt: skip
    declined = await call(
        shop_site, "POST", f"/concierge/requests/{first['id']}/decline",
        json={"reason": "Peonies are out of season"},
    )  # fmt: skip
    assert (declined["status"], declined["decline_reason"]) == (
        "declined",
        "Peonies are out of season",
    )
    await refused(
        shop_site, "POST", f"/concierge/requests/{first['id']}/cost", 409, "conflict", "status",
        json={"actual_cost": 10},
    )  # fmt: skip
    second = await call(shop_site, "POST", "/concierge/requests", status=201, json=flowers)
    cancelled = await call(shop_site, "POST", f"/concierge/requests/{second['id']}/cancel")
    assert cancelled["status"] == "cancelled"
    await refused(shop_site, "GET", "/concierge/requests/nosuch", 404, "not_found", "request_id")
    both = await call(shop_site, "GET", "/concierge/requests")
    assert {r["status"] for r in both["items"]} == {"declined", "cancelled"}


# -- live updates --------------------------------------------------------------------------------
async def next_message(ws: aiohttp.ClientWebSocketResponse, want: Any) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            msg: dict[str, Any] = await ws.receive_json()
            if want(msg):
                return msg


async def test_changes_reach_staff_websockets_but_not_tablets(shop_site: ApiSite) -> None:
    ava = (await members(shop_site))["ava@example.com"]
    staff = await shop_site.client.ws_connect("/api/v1/ws", headers=shop_site.auth("staff1"))
    tablet = await shop_site.pair("room-b")
    tab = await shop_site.client.ws_connect(
        "/api/v1/ws", headers={"Authorization": f"Bearer {tablet['token']}"}
    )
    try:
        await staff.receive_json()  # hello
        await tab.receive_json()
        order = await call(
            shop_site, "POST", "/orders", status=201,
            json={"member_id": ava.id, "items": [{"product": "jade-roller", "quantity": 1}]},
        )  # fmt: skip
        msg = await next_message(staff, lambda m: m["type"] == "shop")
        assert msg["room_id"] is None
        assert msg["data"] == {
            "entity": "order",
            "action": "shop.order.create",
            "id": order["id"],
            "number": order["number"],
            "status": "pending",
        }
        # The tablet's stream carries its own room's scene, but never the shop event before it.
        resp = await shop_site.client.post(
            "/api/v1/rooms/room-b/scenes/day/activate",
            headers={"Authorization": f"Bearer {tablet['token']}"},
        )
        assert resp.status == 200
        seen: list[dict[str, Any]] = []
        await next_message(tab, lambda m: seen.append(m) or m["type"] == "scene")  # type: ignore[func-returns-value]
        assert not any(m["type"] == "shop" for m in seen)
    finally:
        await staff.close()
        await tab.close()


async def test_openapi_describes_every_shop_route_with_resolvable_schemas(
    shop_site: ApiSite,
) -> None:
    doc = await (await shop_site.client.get("/api/openapi.json")).json()
    shop_paths = {p for p in doc["paths"] if p.startswith(SHOP)}
    assert len(shop_paths) == 18
    schemas = doc["components"]["schemas"]
    for ref in refs(doc):
        kind, name = ref.split("/")[-2:]
        assert name in doc["components"][kind], ref
    assert schemas["CounterOrderBody"]["additionalProperties"] is False
    ok = doc["paths"][f"{SHOP}/orders"]["post"]["responses"]["201"]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/QueuedOrder")
