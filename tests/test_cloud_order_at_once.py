"""A cloud worker's one-line order on PostgreSQL is one statement (no transaction round
trips): everything is written when the stock moves, nothing when it cannot.

Both stocks: a site's row (``site_stock``) and the chain's own (``products.stock``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.shop import OutOfStock, Shop
from edge.shop.numbering import NumberReserve
from edge.shop.testing import make_shop, postgres_unreachable
from sync import sites
from sync.sites import SiteBook
from tests.parts import missing
from tests.sync_helpers import prepare_cloud


@pytest.fixture(params=["site", "chain"])
def cloud(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Shop, str, str]]:
    if why := postgres_unreachable():
        missing("PostgreSQL", why)
    with make_shop("postgres", tmp_path) as shop:
        c = prepare_cloud(shop, ())
        site = None
        if request.param == "site":
            site = "soho"
            sites.add_site(shop.db, site, "SoHo", "0.08", "America/New_York")
            shop.site_book = SiteBook()
            shop.restock("robe", {"quantity": 3, "site": site})
        else:
            shop.restock("robe", {"quantity": 3})
        shop.numbers = NumberReserve(shop.db, "cloud-w0")
        yield shop, c.members["ava"], site or ""


def written(shop: Shop) -> dict[str, Any]:
    sale = "SELECT kind, delta, order_id, site FROM stock_movements WHERE kind = 'sale'"
    outbox = ("SELECT entity, entity_id, op, payload, site FROM outbox"
              " WHERE op IN ('sale', 'create') AND entity IN ('order', 'stock_movement')"
              " ORDER BY seq")  # fmt: skip
    with shop.db.read() as tx:
        return {
            "orders": tx.all("SELECT id, number, status, total_cents, site FROM orders"),
            "items": tx.all("SELECT order_id, product_id, quantity FROM order_items"),
            "ledger": tx.all(sale),
            "outbox": tx.all(outbox),
        }


def test_one_line_order_writes_everything_in_one_statement(cloud: tuple[Shop, str, str]) -> None:
    shop, ava, site = cloud
    body = {"items": [{"product": "robe", "quantity": 2}], **({"site": site} if site else {})}
    before = shop.get_product("robe", site=site or None).stock
    order = shop.create_order(ava, body)
    assert shop.get_product("robe", site=site or None).stock == before - 2
    w = written(shop)
    assert [o["id"] for o in w["orders"]] == [order.id]
    assert w["orders"][0]["number"] == order.number and w["orders"][0]["site"] == order.site
    assert w["items"] == [{"order_id": order.id, "product_id": order.items[0].product_id,
                           "quantity": 2}]  # fmt: skip
    assert w["ledger"] == [{"kind": "sale", "delta": -2, "order_id": order.id,
                            "site": site or None}]  # fmt: skip
    # The stock move's outbox row, then the order's: what every node learns.
    assert [(r["entity"], r["op"]) for r in w["outbox"]] == [("stock_movement", "sale"),
                                                             ("order", "create")]  # fmt: skip
    assert json.loads(w["outbox"][1]["payload"])["number"] == order.number
    assert shop.get_order(order.id).to_json() == order.to_json()
    assert shop.ledger_mismatches() == []
    # One more than the stock: nothing at all is written.
    with pytest.raises(OutOfStock) as info:
        shop.create_order(ava, {**body, "items": [{"product": "robe", "quantity": before}]})
    assert info.value.field == "items[0].quantity"
    assert written(shop) == w
    assert shop.get_product("robe", site=site or None).stock == before - 2


def test_one_line_order_never_sells_owed_units(cloud: tuple[Shop, str, str]) -> None:
    """Units an oversell's hold owes are not there to sell (docs/sync.md "Oversell"):
    the one-statement path takes only stock less owed, as every other sale does."""
    shop, ava, site = cloud
    body = {"items": [{"product": "robe", "quantity": 1}], **({"site": site} if site else {})}
    with shop.db.write() as tx:
        pid = str(tx.scalar("SELECT id FROM products WHERE slug = 'robe'"))
        stock = shop.stock_of(tx, pid, site or None)
        shop.owe(tx, pid, stock, site or None)  # every unit on the shelf is owed
    assert shop.get_product("robe", site=site or None).stock == 0
    before = written(shop)
    with pytest.raises(OutOfStock):
        shop.create_order(ava, body)
    assert written(shop) == before
