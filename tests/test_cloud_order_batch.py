"""Group commit of a cloud worker's concurrent orders on PostgreSQL (edge.shop.order_batch,
cloud_api.batching): each order keeps its own outcome, none is stored twice or lost, the
last units are never oversold, and a batch that fails acknowledges nothing it did not
commit.  Both stocks: a site's row (``site_stock``) and the chain's own (``products.stock``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cloud_api.app import build_app
from cloud_api.auth import Auth, Principal, Unauthenticated
from cloud_api.group_commit import ORDERS_KEY
from edge.shop import NotFound, OutOfStock, Shop, StorageFailure, ValidationFailed
from edge.shop.numbering import NumberReserve
from edge.shop.order_batch import OrderRequest
from edge.shop.records import Order
from edge.shop.testing import make_shop, postgres_unreachable
from sync import sites
from sync.sites import SiteBook
from tests.parts import missing
from tests.sync_helpers import prepare_cloud


@pytest.fixture(params=["site", "chain"])
def cloud(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Shop, dict[str, str], str]]:
    if why := postgres_unreachable():
        missing("PostgreSQL", why)
    with make_shop("postgres", tmp_path) as shop:
        c = prepare_cloud(shop, ())
        site = ""
        if request.param == "site":
            site = "soho"
            sites.add_site(shop.db, site, "SoHo", "0.08", "America/New_York")
            shop.site_book = SiteBook()
            for slug, units in (("robe", 3), ("serum", 40), ("gua-sha", 40)):
                shop.restock(slug, {"quantity": units, "site": site})
        else:
            shop.restock("robe", {"quantity": 2})  # 1 + 2: three robes
            shop.restock("serum", {"quantity": 35})
        shop.numbers = NumberReserve(shop.db, "cloud-w0")
        yield shop, c.members, site


def order(slug: str, quantity: int, site: str, **extra: Any) -> dict[str, Any]:
    return {"items": [{"product": slug, "quantity": quantity}], **({"site": site} if site else {}),
            **extra}  # fmt: skip


def stored(shop: Shop) -> dict[str, Any]:
    with shop.db.read() as tx:
        return {
            "orders": tx.all("SELECT id, number FROM orders ORDER BY number"),
            "items": tx.all("SELECT order_id, product_id, quantity FROM order_items"),
            "sales": tx.all("SELECT order_id, delta FROM stock_movements WHERE kind = 'sale'"),
            "outbox": tx.all(
                "SELECT entity, entity_id, op, payload FROM outbox"
                " WHERE op IN ('sale', 'create') ORDER BY seq"
            ),
        }


def test_a_batch_stores_every_order_once_as_alone(cloud: tuple[Shop, dict[str, str], str]) -> None:
    shop, members, site = cloud
    before = stored(shop)
    reqs: list[OrderRequest] = [(members["ava" if k % 2 else "ben"], order("serum", 1, site), None)
                                for k in range(12)]  # fmt: skip
    reqs.append((members["ava"], {"items": [{"product": "serum", "quantity": 2},
                                            {"product": "gua-sha", "quantity": 1}],
                                  **({"site": site} if site else {})}, "staff:x"))  # fmt: skip
    out = shop.create_orders(reqs)
    orders = [o for o in out if isinstance(o, Order)]
    assert len(orders) == 13
    after = stored(shop)
    new = [o for o in after["orders"] if o not in before["orders"]]
    assert sorted(o["id"] for o in new) == sorted(o.id for o in orders)
    assert len({o.number for o in orders}) == 13
    for o in orders:  # each as written is what a read gives back (the 201's body)
        assert shop.get_order(o.id).to_json() == o.to_json()
        assert o.site == (site or None)
    # Each order's feed rows: its stock moves (product-id order), then the order itself.
    rows = after["outbox"][len(before["outbox"]) :]
    per_order: dict[str, list[str]] = {}
    for r in rows:
        key = r["entity_id"] if r["entity"] == "order" else json.loads(r["payload"])["order_id"]
        per_order.setdefault(key, []).append(r["entity"])
    assert per_order[orders[-1].id] == ["stock_movement", "stock_movement", "order"]
    assert all(per_order[o.id] == ["stock_movement", "order"] for o in orders[:-1])
    assert len(after["sales"]) - len(before["sales"]) == 14
    ledger = "SELECT actor FROM stock_movements WHERE order_id = ?"
    actors = {r["actor"] for r in shop.db.query_all(ledger, (orders[-1].id,))}
    assert actors == {"staff:x"}
    assert shop.ledger_mismatches() == []


def test_a_bad_order_is_refused_alone(cloud: tuple[Shop, dict[str, str], str]) -> None:
    shop, members, site = cloud
    ava = members["ava"]
    reqs: list[OrderRequest] = [
        (ava, order("serum", 1, site), None),
        (ava, order("no-such", 1, site), None),
        (ava, order("serum", 1, site, pickup_date="2001-01-01"), None),
        ("no-such-member", order("serum", 1, site), None),
        (ava, order("robe", 99, site), None),
        (ava, {"items": []}, None),
        (ava, order("serum", 1, site), None),
    ]
    out = shop.create_orders(reqs)
    assert isinstance(out[0], Order) and isinstance(out[6], Order)
    assert isinstance(out[1], ValidationFailed) and out[1].field == "items[0].product"
    assert isinstance(out[2], ValidationFailed) and out[2].field == "pickup_date"
    assert isinstance(out[3], NotFound)
    assert isinstance(out[4], OutOfStock) and out[4].field == "items[0].quantity"
    assert out[4].available == 3
    assert isinstance(out[5], ValidationFailed)
    ids = {o["id"] for o in stored(shop)["orders"]}
    assert ids == {out[0].id, out[6].id}
    assert shop.ledger_mismatches() == []


def test_the_last_units_are_never_oversold(cloud: tuple[Shop, dict[str, str], str]) -> None:
    """Three robes, one owed (an oversell's hold): two of five one-robe orders win, and an
    order whose other line fits is refused whole when its robe does not."""
    shop, members, site = cloud
    with shop.db.write() as tx:
        pid = str(tx.scalar("SELECT id FROM products WHERE slug = 'robe'"))
        shop.owe(tx, pid, 1, site or None)
    both = {"items": [{"product": "serum", "quantity": 1}, {"product": "robe", "quantity": 1}],
            **({"site": site} if site else {})}  # fmt: skip
    reqs: list[OrderRequest] = [(members["ava"], order("robe", 1, site), None) for _ in range(5)]
    out = shop.create_orders([*reqs[:2], (members["ben"], both, None), *reqs[2:]])
    won = [o for o in out if isinstance(o, Order)]
    assert len(won) == 2 and out[0] is won[0] and out[1] is won[1]
    assert all(isinstance(o, OutOfStock) and o.available == 0 for o in out[2:])
    assert isinstance(out[2], OutOfStock) and out[2].field == "items[1].quantity"
    assert {o["id"] for o in stored(shop)["orders"]} == {o.id for o in won}
    assert shop.get_product("robe", site=site or None).stock == 0
    assert shop.ledger_mismatches() == []


def test_a_failing_batch_falls_back_to_one_by_one(
    cloud: tuple[Shop, dict[str, str], str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A batch statement that fails (here: made to) rolls back: each order is then tried
    alone and stored once."""
    shop, members, site = cloud
    real = shop._batch_statements

    def broken(*args: Any) -> list[tuple[str, Any]]:
        return [*real(*args), ("INSERT INTO no_such_table VALUES (1)", ())]

    monkeypatch.setattr(shop, "_batch_statements", broken)
    out = shop.create_orders([(members["ava"], order("serum", 1, site), None) for _ in range(4)])
    assert all(isinstance(o, Order) for o in out)
    assert "order batch of 4 failed" in caplog.text and "each order alone" in caplog.text
    assert len(stored(shop)["orders"]) == 4
    assert shop.ledger_mismatches() == []


def test_a_failed_commit_acknowledges_nothing(cloud: tuple[Shop, dict[str, str], str]) -> None:
    """The COMMIT itself fails (a deferred check, here): no order of the batch is
    answered as stored, and none is."""
    shop, members, site = cloud
    with shop.db.write() as tx:
        tx.execute(
            "CREATE FUNCTION refuse_late() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF NEW.customer_notes = 'fail at commit' THEN RAISE EXCEPTION 'refused late';"
            " END IF; RETURN NEW; END $$"
        )
        tx.execute(
            "CREATE CONSTRAINT TRIGGER late AFTER INSERT ON orders DEFERRABLE INITIALLY"
            " DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_late()"
        )
    reqs: list[OrderRequest] = [(members["ava"], order("serum", 1, site), None) for _ in range(3)]
    reqs.append((members["ava"], order("serum", 1, site, customer_notes="fail at commit"), None))
    reqs.append((members["ava"], order("no-such", 1, site), None))
    out = shop.create_orders(reqs)
    assert all(isinstance(o, StorageFailure) for o in out[:4])
    assert isinstance(out[4], ValidationFailed)  # refused on its own merits, as before
    assert stored(shop)["orders"] == []
    assert shop.ledger_mismatches() == []


def test_tokens_of_concurrent_requests_in_one_statement(
    cloud: tuple[Shop, dict[str, str], str],
) -> None:
    shop, members, _ = cloud
    auth = Auth(shop.db)
    ava, ben = auth.issue_member_token(members["ava"]), auth.issue_member_token(members["ben"])
    staff_id = auth.create_staff("s@example.com", "S", "pw-long-enough", "staff")
    staff, _, _ = auth.login("s@example.com", "pw-long-enough")
    with shop.db.write() as tx:
        tx.execute("UPDATE staff_accounts SET active = 0 WHERE id = ?", (staff_id,))
    out = auth.authenticate_many([ava, "nope", ben, staff, ava])
    assert out[0] == out[4] == Principal("member", members["ava"])
    assert out[2] == Principal("member", members["ben"])
    assert isinstance(out[1], Unauthenticated) and isinstance(out[3], Unauthenticated)


@pytest.fixture
async def client(
    cloud: tuple[Shop, dict[str, str], str],
) -> AsyncIterator[tuple[TestClient[Any, Any], dict[str, str], str]]:
    shop, members, site = cloud
    auth = Auth(shop.db)
    auth.migrate()
    tokens = {who: auth.issue_member_token(mid) for who, mid in members.items()}
    async with TestClient(TestServer(build_app(shop, auth))) as c:
        yield c, tokens, site


async def test_concurrent_orders_over_http(
    client: tuple[TestClient[Any, Any], dict[str, str], str],
    cloud: tuple[Shop, dict[str, str], str],
) -> None:
    """Twenty members' orders at once, one of them bad, three for the last three robes
    among six: every good one is a 201 stored once, the bad one a 422 naming its field."""
    c, tokens, site = client
    shop = cloud[0]

    async def post(token: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        r = await c.post("/api/v1/shop/orders", json=body,
                         headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        return r.status, await r.json()

    bodies = [order("serum", 1, site) for _ in range(13)] + [order("robe", 1, site)] * 6
    bodies.insert(7, order("no-such", 1, site))
    answers = await asyncio.gather(*(post(tokens["ava" if k % 2 else "ben"], b)
                                     for k, b in enumerate(bodies)))  # fmt: skip
    assert answers[7][0] == 422 and answers[7][1]["error"]["field"] == "items[0].product"
    created = [body for status, body in answers if status == 201]
    refused = [body for status, body in answers if status == 409]
    assert len(created) == 13 + 3 and len(refused) == 3
    assert all(b["error"]["code"] == "out_of_stock" for b in refused)
    rows = stored(shop)["orders"]
    assert sorted(r["id"] for r in rows) == sorted(b["id"] for b in created)
    assert {r["number"] for r in rows} == {b["number"] for b in created}
    batcher = c.server.app[ORDERS_KEY]
    assert batcher.items == 20 and batcher.batches < 20  # concurrent orders went together
    # Credentials checked in the batch are refused as on any route, and first.
    staff = Auth(shop.db)
    staff.create_staff("s@example.com", "S", "pw-long-enough", "staff")
    staff_token, _, _ = staff.login("s@example.com", "pw-long-enough")
    for token, body, status in (
        ("revoked-or-never-issued", order("serum", 1, site), 401),
        ("revoked-or-never-issued", {"items": "not a list"}, 401),
        (staff_token, order("serum", 1, site), 403),
        (tokens["ava"], {"items": "not a list"}, 422),
    ):
        assert (await post(token, body))[0] == status
    assert batcher.items == 22  # the two bodies that parse
    assert len(stored(shop)["orders"]) == 16
    assert shop.ledger_mismatches() == []
