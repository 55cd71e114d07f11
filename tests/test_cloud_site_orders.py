"""Per-site tax rate, stock and time zone on orders; the pickup site; members partitioned.

The cloud's shop is the chain's: an order names its pickup site and that
site's rules apply.  An edge is one site: its orders take its own site.
A node reads the members who are of its site only (enrolled or ordered there).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cloud_api.app import build_app
from edge.shop import NotFound, OutOfStock, Shop, ShopConfig, SqliteDatabase, ValidationFailed
from edge.shop.testing import MutableClock, make_shop, postgres_unreachable
from sync import sites
from sync.apply import Change
from sync.client import SyncClient
from sync.cloud import CloudSync
from tests.parts import missing
from tests.sync_helpers import Cloud, edge_config, off_loop, prepare_cloud

# 23:30 UTC on 1 June: still 1 June in New York, already 2 June in Paris.
LATE_EVENING = datetime(2026, 6, 1, 23, 30, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def chain(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cloud]:
    if request.param == "postgres" and (why := postgres_unreachable()):
        missing("PostgreSQL", why)
    with make_shop(request.param, tmp_path, clock=MutableClock(LATE_EVENING)) as shop:
        cloud = prepare_cloud(shop, ())
        sites.add_site(shop.db, "soho", "SoHo", "0.08", "America/New_York")
        sites.add_site(shop.db, "paris", "Paris", "0.20", "Europe/Paris")
        shop.restock("serum", {"quantity": 2, "site": "soho"})
        shop.restock("serum", {"quantity": 5, "site": "paris"})
        yield cloud


def _order(site: str | None, quantity: int = 1, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"items": [{"product": "serum", "quantity": quantity}], **extra}
    if site is not None:
        body["site"] = site
    return body


def test_a_web_order_takes_its_sites_tax_stock_and_day(chain: Cloud) -> None:
    shop, ava = chain.shop, chain.members["ava"]
    for body, field in ((_order(None), "site"), (_order("tokyo"), "site"),
                        (_order("paris", pickup_date="2026-06-01"), "pickup_date")):  # fmt: skip
        with pytest.raises(ValidationFailed) as refused:
            shop.create_order(ava, body)
        assert refused.value.field == field
    # 1 June is today in New York, yesterday in Paris.
    soho = shop.create_order(ava, _order("soho", 2, pickup_date="2026-06-01"))
    paris = shop.create_order(ava, _order("paris", 3))
    assert (soho.site, soho.tax_rate, paris.site, paris.tax_rate) == (
        "soho", Decimal("0.08"), "paris", Decimal("0.20"))  # fmt: skip
    assert paris.tax == (paris.subtotal * Decimal("0.20")).quantize(Decimal("0.01"))
    assert soho.to_json()["site"] == "soho"
    with pytest.raises(OutOfStock):  # soho is sold out; paris's stock is paris's
        shop.create_order(ava, _order("soho", 1))
    stock = {s: shop.get_product("serum", site=s).stock for s in ("soho", "paris")}
    assert stock == {"soho": 0, "paris": 2}
    assert shop.get_product("serum").stock == 5  # the chain's own (unsited) stock untouched
    shop.cancel_order(paris.id)
    assert shop.get_product("serum", site="paris").stock == 5
    assert shop.ledger_mismatches() == []
    assert [o.id for o in shop.list_orders(site="soho").items] == [soho.id]
    with pytest.raises(NotFound):
        shop.get_order(paris.id, site="soho")


def test_an_edge_takes_its_own_site(tmp_path: Path) -> None:
    db = SqliteDatabase(str(tmp_path / "edge.db"))
    try:
        edge = Shop(db, ShopConfig(node_id="soho-1", site="soho"))
        edge.migrate()
        edge.create_product({"slug": "serum", "name": "Serum", "category": "skincare",
                             "price": "40.00"}, initial_stock=3)  # fmt: skip
        ben = edge.create_member(
            {"name": "Ben", "email": "ben@example.com", "phone": "+1 555 123 4567",
             "date_of_birth": "1980-01-01"}
        )  # fmt: skip
        assert edge.create_order(ben.id, _order(None)).site == "soho"
        assert edge.create_order(ben.id, _order("soho")).site == "soho"
        with pytest.raises(ValidationFailed) as refused:
            edge.create_order(ben.id, _order("paris"))
        assert refused.value.field == "site"
    finally:
        db.close()


@pytest.fixture
async def http(chain: Cloud) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(build_app(chain.shop, chain.auth, workers=4))) as c:
        yield c


async def test_over_http_the_site_is_named_and_checked(
    chain: Cloud, http: TestClient[Any, Any]
) -> None:
    token = await off_loop(lambda: chain.auth.issue_member_token(chain.members["ava"]))
    me = {"Authorization": f"Bearer {token}"}
    for body in (_order(None), _order("nowhere"), _order("Paris!")):
        r = await http.post("/api/v1/shop/orders", json=body, headers=me)
        assert r.status == 422 and (await r.json())["error"]["field"] == "site", await r.text()
    r = await http.post("/api/v1/shop/orders", json=_order("paris", 2), headers=me)
    assert r.status == 201, await r.text()
    placed = await r.json()
    assert (placed["site"], placed["tax_rate"]) == ("paris", "0.20")


async def _sync(shop: Shop, http: TestClient[Any, Any], node: str, secret: str) -> None:
    client = SyncClient(shop, edge_config(str(http.make_url("/")).rstrip("/"), node),
                        secret=secret)  # fmt: skip
    try:
        await client.sync_once()
    finally:
        await client.stop()


def _edge(path: Path, node: str, site: str) -> Shop:
    shop = Shop(SqliteDatabase(str(path)), ShopConfig(node_id=node, number_authority=False,
                                                      site=site))  # fmt: skip
    shop.migrate()
    return shop


def _members(shop: Shop) -> set[str]:
    with shop.db.read() as tx:
        return {r["id"] for r in tx.all("SELECT id FROM members")}


async def test_a_node_reads_its_sites_members_orders_and_stock(
    chain: Cloud, http: TestClient[Any, Any], tmp_path: Path
) -> None:
    cloud, ava, ben = chain.shop, chain.members["ava"], chain.members["ben"]
    secrets = await off_loop(lambda: {n: chain.auth.register_node(f"{n}-1", n)
                                      for n in ("soho", "paris")})  # fmt: skip
    sync = CloudSync(cloud)
    await off_loop(lambda: sync.enroll(ben, "soho", "test"))
    paris = await off_loop(lambda: _edge(tmp_path / "paris.db", "paris-1", "paris"))
    soho = await off_loop(lambda: _edge(tmp_path / "soho.db", "soho-1", "soho"))
    try:
        await _sync(paris, http, "paris-1", secrets["paris"])
        await _sync(soho, http, "soho-1", secrets["soho"])
        assert await off_loop(lambda: _members(paris)) == set()  # nobody is of paris yet
        assert await off_loop(lambda: _members(soho)) == {ben}
        assert await off_loop(lambda: paris.get_product("serum").stock) == 5
        assert await off_loop(lambda: soho.get_product("serum").stock) == 2
        # ava orders on the web for pickup in Paris: paris's node learns her and the order.
        web = await off_loop(lambda: cloud.create_order(ava, _order("paris", 2)))
        await _sync(paris, http, "paris-1", secrets["paris"])
        await _sync(soho, http, "soho-1", secrets["soho"])
        assert await off_loop(lambda: _members(paris)) == {ava}
        assert (await off_loop(lambda: paris.get_order(web.id))).site == "paris"
        assert await off_loop(lambda: paris.get_product("serum").stock) == 3
        with pytest.raises(NotFound):
            await off_loop(lambda: soho.get_order(web.id))
        assert await off_loop(lambda: _members(soho)) == {ben}
        # A soho node cannot complete paris's web order by pushing a change to it.
        forged = Change("soho-1", 10_000, "order", web.id, "status",
                        {**web.to_json(), "status": "completed"}, web.created_at)  # fmt: skip
        [ack] = await off_loop(lambda: sync.push("soho-1", [forged]))
        assert ack.status == "rejected" and "another site" in str(ack.reason), ack
        assert (await off_loop(lambda: cloud.get_order(web.id))).status == "pending"
        # Ben's order at the soho counter lands in soho's stock in the cloud, not paris's.
        counter = await off_loop(lambda: soho.create_order(ben, _order(None, 1)))
        await _sync(soho, http, "soho-1", secrets["soho"])
        assert (await off_loop(lambda: cloud.get_order(counter.id))).site == "soho"
        assert await off_loop(lambda: cloud.get_product("serum", site="soho").stock) == 1
        assert await off_loop(lambda: cloud.get_product("serum", site="paris").stock) == 3
        assert await off_loop(cloud.ledger_mismatches) == []
        await _sync(paris, http, "paris-1", secrets["paris"])
        with pytest.raises(NotFound):
            await off_loop(lambda: paris.get_order(counter.id))
        assert await off_loop(lambda: paris.get_product("serum").stock) == 3
    finally:
        await off_loop(lambda: paris.db.close())
        await off_loop(lambda: soho.db.close())


def test_every_day_rule_uses_the_sites_zone(chain: Cloud) -> None:
    """Concierge lead time counts from the pickup site's today, too."""
    ava = chain.members["ava"]
    request = {"request_type": "gift_items", "title": "Flowers", "description": "Roses",
               "budget_min": "10.00", "budget_max": "50.00",
               "preferred_pickup_date": "2026-06-04"}  # fmt: skip
    # New York: 1 June + 3 = 4 June is fine; Paris: 2 June + 3 = 5 June, so 4 June is early.
    made = chain.shop.submit_request(ava, {**request, "site": "soho"})
    assert made.site == "soho"
    with pytest.raises(ValidationFailed) as refused:
        chain.shop.submit_request(ava, {**request, "site": "paris"})
    assert refused.value.field == "preferred_pickup_date"
