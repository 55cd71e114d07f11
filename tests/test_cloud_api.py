"""The cloud API over real HTTP on SQLite and PostgreSQL: auth, bad input, flows, OpenAPI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from cloud_api.app import build_app
from cloud_api.auth import Auth
from cloud_api.demo import STAFF, seed
from edge.shop import Shop
from edge.shop.testing import make_shop, postgres_unreachable
from tests.parts import missing

AVA, BEN, CLEO = "demo-member-ava", "demo-member-ben", "demo-member-cleo"


@dataclass
class Backend:
    shop: Shop
    auth: Auth
    node_secret: str


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "postgres" and (why := postgres_unreachable()):
        missing("PostgreSQL", why)
    with make_shop(request.param, tmp_path) as shop:
        auth = Auth(shop.db)
        auth.migrate()
        seed(shop, auth)
        yield Backend(shop, auth, auth.register_node("edge-1"))


@pytest.fixture
async def client(backend: Backend) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(build_app(backend.shop, backend.auth))) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def staff_token(client: TestClient[Any, Any]) -> str:
    r = await client.post("/api/v1/auth/login", json={"email": STAFF[0], "password": STAFF[2]})
    assert r.status == 200
    return str((await r.json())["token"])


async def error_of(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "field", "message"}
    return dict(body["error"])


async def test_catalogue_for_members(client: TestClient[Any, Any]) -> None:
    r = await client.get(
        "/api/v1/shop/products", params={"category": "skincare", "page_size": "2"},
        headers=bearer(AVA),
    )  # fmt: skip
    page = await r.json()
    assert r.status == 200 and page["total"] == 4 and len(page["items"]) == 2
    assert page["items"][0]["price"] == "45.00"  # money is a string, never a float
    r = await client.get("/api/v1/shop/products", params={"search": "JADE"}, headers=bearer(AVA))
    assert [p["slug"] for p in (await r.json())["items"]] == ["jade-roller"]
    r = await client.get("/api/v1/shop/products/categories", headers=bearer(AVA))
    assert {c["category"] for c in (await r.json())["categories"]} == {
        "skincare", "wellness_tech", "accessories", "supplements",
    }  # fmt: skip
    r = await client.get("/api/v1/shop/products/gua-sha-stone", headers=bearer(AVA))
    assert (await r.json())["low_stock"] is True


async def test_authentication_and_roles(client: TestClient[Any, Any], backend: Backend) -> None:
    assert (await error_of(await client.get("/api/v1/shop/orders"), 401))["code"] == (
        "unauthenticated"
    )
    await error_of(await client.get("/api/v1/shop/orders", headers=bearer("nope")), 401)
    new_product = {"name": "X", "slug": "x", "category": "skincare", "price": "1"}
    r = await client.post("/api/v1/shop/products", json=new_product, headers=bearer(AVA))
    await error_of(r, 403)
    r = await client.post(
        "/api/v1/shop/products/jade-roller/restock", json={"quantity": 1}, headers=bearer(AVA)
    )
    await error_of(r, 403)
    r = await client.post("/api/v1/auth/login", json={"email": STAFF[0], "password": "wrong"})
    await error_of(r, 401)
    staff = await staff_token(client)
    r = await client.post("/api/v1/shop/orders", json={"items": []}, headers=bearer(staff))
    await error_of(r, 403)  # orders are placed by members
    node = {"Authorization": f"Node edge-1:{backend.node_secret}"}
    r = await client.get("/api/v1/sync/whoami", headers=node)
    assert (await r.json()) == {"kind": "node", "subject": "edge-1", "role": None, "site": None}
    r = await client.get("/api/v1/sync/whoami", headers={"Authorization": "Node edge-1:bad"})
    await error_of(r, 401)
    await error_of(await client.get("/api/v1/sync/whoami", headers=bearer(AVA)), 401)


async def test_members_cannot_see_each_others_orders(client: TestClient[Any, Any]) -> None:
    r = await client.post(
        "/api/v1/shop/orders", json={"items": [{"product": "jade-roller", "quantity": 1}]},
        headers=bearer(AVA),
    )  # fmt: skip
    order = await r.json()
    assert r.status == 201 and order["number"].startswith("PO-")
    await error_of(await client.get(f"/api/v1/shop/orders/{order['id']}", headers=bearer(BEN)), 404)
    r = await client.post(f"/api/v1/shop/orders/{order['id']}/cancel", headers=bearer(BEN))
    await error_of(r, 404)
    r = await client.get("/api/v1/shop/orders", headers=bearer(BEN))
    assert (await r.json())["total"] == 0
    r = await client.get("/api/v1/shop/orders", headers=bearer(AVA))
    assert [o["id"] for o in (await r.json())["items"]] == [order["id"]]


ORDER_CASES = [
    ({"items": [{"product": "jade-roller", "quantity": -1}]}, "items[0].quantity"),
    ({"items": [{"product": "jade-roller", "quantity": "abc"}]}, "items[0].quantity"),
    ({"items": [{"product": "jade-roller", "quantity": 1.5}]}, "items[0].quantity"),
    ({"items": [{"product": "no-such-thing", "quantity": 1}]}, "items[0].product"),
    ({"items": [{"product": "x" * 100_0, "quantity": 1}]}, "items[0].product"),
    ({"items": "jade-roller"}, "items"),
    ({"items": [{"product": "jade-roller", "quantity": 1}], "pickup_date": "2020-01-01"},
     "pickup_date"),
    ({"items": [{"product": "jade-roller", "quantity": 1}], "pickup_date": "31/12/2030"},
     "pickup_date"),
    ({"items": [{"product": "jade-roller", "quantity": 1}], "discount": 50}, "discount"),
    ({"items": [{"product": "jade-roller", "quantity": 1, "price": "0.01"}]}, "items[0].price"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "field"), ORDER_CASES)
async def test_bad_orders_get_422_naming_the_field(
    client: TestClient[Any, Any], body: dict[str, Any], field: str
) -> None:
    r = await client.post("/api/v1/shop/orders", json=body, headers=bearer(AVA))
    assert (await error_of(r, 422))["field"] == field


async def test_malformed_bodies(client: TestClient[Any, Any], backend: Backend) -> None:
    h = {**bearer(AVA), "Content-Type": "application/json"}
    r = await client.post("/api/v1/shop/orders", data=b"{not json", headers=h)
    assert (await error_of(r, 422))["field"] == "body"
    r = await client.post("/api/v1/shop/orders", data=b"[1, 2]", headers=h)
    assert (await error_of(r, 422))["field"] == "body"
    r = await client.post("/api/v1/shop/orders", data=b"x" * 200_000, headers=h)
    await error_of(r, 413)
    r = await client.get("/api/v1/shop/products", params={"colour": "red"}, headers=h)
    assert (await error_of(r, 422))["field"] == "colour"
    r = await client.get("/api/v1/shop/products", params={"page": "-3"}, headers=h)
    assert (await error_of(r, 422))["field"] == "page"
    await error_of(await client.get("/api/v1/nowhere", headers=h), 404)
    await asyncio.to_thread(backend.shop.deactivate_product, "waffle-robe")
    r = await client.post(
        "/api/v1/shop/orders", json={"items": [{"product": "waffle-robe", "quantity": 1}]},
        headers=h,
    )  # fmt: skip
    assert (await error_of(r, 422))["field"] == "items[0].product"
    await error_of(await client.get("/api/v1/shop/products/waffle-robe", headers=h), 404)


async def test_out_of_stock_is_409(client: TestClient[Any, Any]) -> None:
    r = await client.post(
        "/api/v1/shop/orders", json={"items": [{"product": "gua-sha-stone", "quantity": 3}]},
        headers=bearer(AVA),
    )  # fmt: skip
    err = await error_of(r, 409)
    assert err["code"] == "out_of_stock" and err["field"] == "items[0].quantity"


async def test_staff_runs_products_and_orders(client: TestClient[Any, Any]) -> None:
    staff = bearer(await staff_token(client))
    body = {"name": "Lavender Oil", "slug": "lavender-oil", "category": "skincare",
            "price": "24.00", "member_price": "19.20"}  # fmt: skip
    r = await client.post("/api/v1/shop/products", json=body, headers=staff)
    assert r.status == 201 and (await r.json())["stock"] == 0
    r = await client.post("/api/v1/shop/products", json=body, headers=staff)
    assert (await error_of(r, 409))["field"] == "slug"
    r = await client.patch("/api/v1/shop/products/lavender-oil", json={"price": "10"},
                           headers=staff)  # fmt: skip
    assert (await error_of(r, 422))["field"] == "member_price"
    r = await client.post("/api/v1/shop/products/lavender-oil/restock", json={"quantity": 5},
                          headers=staff)  # fmt: skip
    assert (await r.json())["stock"] == 5
    r = await client.post("/api/v1/shop/products/lavender-oil/adjust",
                          json={"delta": -1, "reason": "tester"}, headers=staff)  # fmt: skip
    assert (await r.json())["stock"] == 4
    r = await client.post(
        "/api/v1/shop/orders", json={"items": [{"product": "lavender-oil", "quantity": 2}]},
        headers=bearer(AVA),
    )  # fmt: skip
    order = await r.json()
    assert order["total"] == "41.47"  # 38.40 + 3.072 tax → 3.07
    url = f"/api/v1/shop/orders/{order['id']}"
    r = await client.post(url + "/status", json={"status": "ready"}, headers=staff)
    assert (await error_of(r, 409))["code"] == "invalid_transition"
    for status in ("processing", "ready"):
        r = await client.post(url + "/status", json={"status": status}, headers=staff)
        assert r.status == 200
    await error_of(await client.post(url + "/cancel", headers=bearer(AVA)), 409)
    r = await client.delete("/api/v1/shop/products/lavender-oil", headers=staff)
    assert (await r.json())["active"] is False


async def test_concierge_over_http(client: TestClient[Any, Any]) -> None:
    body = {
        "request_type": "premium_alcohol", "title": "Champagne", "description": "Brut",
        "budget_min": "50", "budget_max": "120", "preferred_pickup_date": "2099-01-10",
    }  # fmt: skip
    await error_of(await client.post("/api/v1/concierge/requests", json=body,
                                     headers=bearer(BEN)), 403)  # fmt: skip
    r = await client.post(
        "/api/v1/concierge/requests", json={**body, "title": "t" * 5000}, headers=bearer(AVA)
    )
    assert (await error_of(r, 422))["field"] == "title"
    r = await client.post(
        "/api/v1/concierge/requests", json={**body, "budget_min": 500}, headers=bearer(AVA)
    )
    assert (await error_of(r, 422))["field"] == "budget_min"
    r = await client.post("/api/v1/concierge/requests", json=body, headers=bearer(AVA))
    req = await r.json()
    assert r.status == 201 and req["number"].startswith("CR-")
    staff = bearer(await staff_token(client))
    url = f"/api/v1/concierge/requests/{req['id']}"
    await error_of(await client.post(url + "/approve", headers=bearer(AVA)), 403)
    assert (await (await client.post(url + "/approve", headers=staff)).json())["status"] == (
        "approved"
    )
    r = await client.post(url + "/cost", json={"actual_cost": "99.50"}, headers=staff)
    assert (await r.json())["within_budget"] is True
    for status in ("processing", "ready"):
        await client.post(url + "/status", json={"status": status}, headers=staff)
    r = await client.post(url + "/status", json={"status": "completed"}, headers=staff)
    assert (await error_of(r, 409))["field"] == "age_verified"
    await client.post(url + "/verify-age", headers=staff)
    r = await client.post(url + "/status", json={"status": "completed"}, headers=staff)
    assert (await r.json())["status"] == "completed"
    await error_of(await client.get(url, headers=bearer(CLEO)), 404)


async def test_openapi_lists_every_route(client: TestClient[Any, Any]) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    registered = {
        (route.method.lower(), route.resource.canonical)
        for route in client.app.router.routes()
        if route.method != "HEAD"
        and route.resource is not None
        # the website's HTML pages are not API routes (tests/test_auth_coverage.py)
        and route.resource.canonical.startswith("/api/")
    }
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert registered - {("get", "/api/openapi.json")} == documented


async def test_metrics_for_admins_in_prometheus_format(
    client: TestClient[Any, Any], backend: Backend
) -> None:
    admin = bearer(await staff_token(client))
    await client.get("/api/v1/shop/products/gua-sha-stone", headers=bearer(AVA))
    await error_of(await client.get("/api/v1/metrics"), 401)
    await error_of(await client.get("/api/v1/metrics", headers=bearer(AVA)), 403)
    resp = await client.get("/api/v1/metrics", headers=admin)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(await resp.text())
        for s in family.samples
    }
    product = "/api/v1/shop/products/{slug}"
    key = (("method", "GET"), ("route", product), ("status", "200"))
    assert samples[("coresync_cloud_requests_total", key)] == 1
    refused = (("method", "GET"), ("route", "/api/v1/metrics"), ("status", "401"))
    assert samples[("coresync_cloud_requests_total", refused)] == 1
    count = samples[("coresync_cloud_request_seconds_count", (("route", product),))]
    assert count == 1
    assert samples[("process_resident_memory_bytes", ())] > 0


async def test_no_versions_in_the_server_header(client: TestClient[Any, Any]) -> None:
    """The cloud faces the internet: no Python or aiohttp version for anyone shopping
    for exploits, on JSON answers, errors, unknown paths and website pages alike."""
    for path in ("/api/v1/shop/products", "/api/v1/no-such-route", "/api/openapi.json", "/"):
        r = await client.get(path)
        assert r.headers.get("Server") == "coresync-cloud", (path, r.headers.get("Server"))
