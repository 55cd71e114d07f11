"""Oversells are seen where they are fixed: at the edge, named (product and
shortfall), open until staff resolve them, with a one-step resolve on the LAN API.

Before, the edge's item resolved itself once the cloud's hold arrived, so staff
at the spa never saw it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from edge.shop import OutOfStock, PostgresDatabase, Shop, SqliteDatabase
from edge.shop.db import Database
from edge.shop.demo_seed import seed_demo_shop
from edge.shop.testing import PG_DSN, postgres_schema, postgres_unreachable
from sync import sites
from sync.attention import list_attention
from sync.client import SyncClient
from sync.cloud import CloudSync
from sync.oversell import raise_oversell
from sync.schema import migrate_sync
from sync.testing import CloudProcess
from tests.axe import serious_violations
from tests.conftest import free_port
from tests.parts import missing
from tests.sync_helpers import (
    Cloud,
    edge_config,
    make_edge,
    off_loop,
    prepare_cloud,
    running_cloud,
)
from tests.test_api_support import ApiSite, api
from tests.test_web_dashboard import overflow, staff_page
from tests.test_web_pages import browser

__all__ = ["api", "browser"]


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[tuple[Cloud, CloudProcess]]:
    with running_cloud(tmp_path / "cloud.db") as running:
        yield running


async def _sync(edge: Shop, c: Cloud, proc: CloudProcess) -> None:
    client = SyncClient(edge, edge_config(proc.url), secret=c.secrets["edge-1"])
    try:
        await client.sync_once()
    finally:
        await client.stop()


def _robe(shop: Shop, member: str) -> str:
    return shop.create_order(member, {"items": [{"product": "robe", "quantity": 1}]}).number


async def test_an_oversell_stays_open_at_the_edge_naming_product_and_shortfall(
    cloud: tuple[Cloud, CloudProcess], tmp_path: Path
) -> None:
    c, proc = cloud
    edge = await off_loop(lambda: make_edge(tmp_path / "edge.db"))
    try:
        await _sync(edge, c, proc)
        await asyncio.to_thread(_robe, edge, c.members["ben"])  # the last robe, at the counter
        await asyncio.to_thread(_robe, c.shop, c.members["ava"])  # and online, meanwhile
        for _ in range(3):  # the hold arrives and applies; the item must stay
            await _sync(edge, c, proc)
        items = await asyncio.to_thread(list_attention, edge.db)
        oversells = [i for i in items if i.kind in ("oversell", "oversell_held")]
        assert len(oversells) == 1, [(i.kind, i.detail) for i in items]
        item = oversells[0]
        assert item.resolved_at is None
        assert "Spa Robe (robe)" in item.detail and "short by 1" in item.detail, item.detail
        assert item.data["short"] == 1
    finally:
        await off_loop(lambda: edge.db.close())


def _with_an_oversell(shop: Shop) -> int:
    seed_demo_shop(shop)
    migrate_sync(shop.db)
    with shop.db.write() as tx:
        pid = tx.scalar("SELECT id FROM products WHERE slug = 'gua-sha-stone'")
        raise_oversell(tx, "oversell", str(pid), 2, "cloud", None)
        return int(tx.scalar("SELECT MAX(id) AS i FROM sync_attention"))


async def test_one_step_resolve_on_the_lan_api(api: ApiSite) -> None:
    item = await api.core.run_shop(_with_an_oversell)
    url = f"/api/v1/sync/attention/{item}/resolve"
    before = await api.core.run_shop(lambda s: s.get_product("gua-sha-stone").stock)
    assert (await api.client.post(url, json={"action": "restock", "quantity": 2})).status == 401
    r = await api.client.post(url, json={"action": "restock"}, headers=api.auth("staff1"))
    assert r.status == 422 and (await r.json())["error"]["field"] == "quantity"
    r = await api.client.post(url, json={"action": "restock", "quantity": "2"},
                              headers=api.auth("staff1"))  # fmt: skip
    assert r.status == 422
    r = await api.client.post(url, json={"action": "restock", "quantity": 2},
                              headers=api.auth("staff1"))  # fmt: skip
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["resolved_at"] and body["resolved_by"].endswith(":restock")
    after = await api.core.run_shop(lambda s: s.get_product("gua-sha-stone").stock)
    assert after == before + 2
    r = await api.client.post(url, json={"action": "acknowledge"}, headers=api.auth("staff1"))
    assert r.status == 404, "a resolved item is not resolved twice"


async def test_a_substitute_moves_both_products_in_one_step(api: ApiSite) -> None:
    """The member got another product for the short one: the given product's
    stock goes down, the short one's up by the same units, one ledger row each."""
    item = await api.core.run_shop(_with_an_oversell)
    url = f"/api/v1/sync/attention/{item}/resolve"
    staff = api.auth("staff1")

    def stocks(shop: Shop) -> tuple[int, int]:
        return shop.get_product("gua-sha-stone").stock, shop.get_product("jade-roller").stock

    before = await api.core.run_shop(stocks)
    for body, field in (
        ({"action": "substitute"}, "substitute_slug"),
        ({"action": "substitute", "substitute_slug": "no-such-thing"}, "substitute_slug"),
        ({"action": "substitute", "substitute_slug": "gua-sha-stone"}, "substitute_slug"),
    ):
        r = await api.client.post(url, json=body, headers=staff)
        assert r.status == 422 and (await r.json())["error"]["field"] == field, body
    assert await api.core.run_shop(stocks) == before, "a refused resolve moves nothing"
    r = await api.client.post(
        url, json={"action": "substitute", "substitute_slug": "jade-roller", "note": "gift box"},
        headers=staff,
    )  # fmt: skip
    assert r.status == 200, await r.text()
    assert (await r.json())["resolved_by"].endswith(":substitute")
    assert await api.core.run_shop(stocks) == (before[0] + 2, before[1] - 2)
    assert await api.core.run_shop(lambda s: s.ledger_mismatches()) == []


# ---- the hold never shows phantom stock -------------------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def one_site(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Cloud, CloudProcess]]:
    """A chain of one site (soho) with two nodes, served by a real coresync-cloud process."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            db: Database = SqliteDatabase(str(tmp_path / "cloud.db"))
            proc = CloudProcess(str(tmp_path / "cloud.db"), free_port())
        else:
            if why := postgres_unreachable():
                missing("PostgreSQL", why)
            schema = stack.enter_context(postgres_schema())
            db = PostgresDatabase(PG_DSN, schema=schema, pool_size=4)
            proc = CloudProcess(PG_DSN, free_port(), schema=schema)
        yield from _one_site(db, proc)


def _one_site(db: Database, proc: CloudProcess) -> Iterator[tuple[Cloud, CloudProcess]]:
    try:
        c = prepare_cloud(Shop(db), ())
        sites.add_site(db, "soho", "SoHo", "0.08", "America/New_York")
        for name in ("soho-1", "soho-2"):
            c.secrets[name] = c.auth.register_node(name, "soho")
        c.shop.create_product(
            {
                "slug": "lamp",
                "name": "Salt Lamp",
                "category": "accessories",
                "price": "25.00",
                "image_url": "https://cdn.example.com/l.jpg",
            }
        )
        c.shop.restock("lamp", {"quantity": 5, "site": "soho"})
        for who in ("ava", "ben"):
            CloudSync(c.shop).enroll(c.members[who], "soho", "test")
        proc.start()
        try:
            yield c, proc
        finally:
            proc.stop()
    finally:
        db.close()


async def _sync_node(edge: Shop, c: Cloud, proc: CloudProcess, name: str) -> None:
    client = SyncClient(edge, edge_config(proc.url, name), secret=c.secrets[name])
    try:
        await client.sync_once()
    finally:
        await client.stop()


def _real(shop: Shop, site: str | None) -> tuple[int, int]:
    """(ledger stock, owed) of the lamp: what is really there is their difference."""
    with shop.db.read() as tx:
        if site is None:
            row = tx.one("SELECT stock, owed FROM products WHERE slug = 'lamp'")
        else:
            row = tx.one(
                "SELECT s.stock, s.owed FROM site_stock s JOIN products p"
                " ON p.id = s.product_id WHERE p.slug = 'lamp' AND s.site = ?",
                (site,),
            )
    assert row is not None
    return int(row["stock"]), int(row["owed"])


async def test_an_oversell_across_two_nodes_never_shows_phantom_stock(
    one_site: tuple[Cloud, CloudProcess], tmp_path: Path
) -> None:
    """Both nodes sell the site's 5 lamps while apart: really -5. Before, the cloud's
    hold counted as stock, so a restock of 4 showed (and sold) 4 lamps that were owed."""
    c, proc = one_site
    token = await asyncio.to_thread(c.auth.issue_member_token, c.members["ava"])
    member = {"Authorization": f"Bearer {token}"}
    edges = {n: await off_loop(lambda n=n: make_edge(tmp_path / f"{n}.db", n))  # type: ignore[misc]
             for n in ("soho-1", "soho-2")}  # fmt: skip
    one, two = edges["soho-1"], edges["soho-2"]

    async def sync_all() -> None:
        for _ in range(2):
            for name, edge in edges.items():
                await _sync_node(edge, c, proc, name)

    async def shown() -> list[int]:
        """The lamp's stock as the member API, the cloud's shop and each edge show it."""
        url = f"{proc.url}/api/v1/shop/products/lamp"
        async with ClientSession() as http, http.get(url, headers=member) as r:
            assert r.status == 200, await r.text()
            api_stock = int((await r.json())["stock"])
        edge_stock = [await asyncio.to_thread(lambda e=e: e.get_product("lamp").stock)
                      for e in (one, two)]  # fmt: skip
        return [api_stock, *edge_stock]

    def lamps(shop: Shop, who: str, n: int) -> str:
        return shop.create_order(
            c.members[who], {"items": [{"product": "lamp", "quantity": n}]}
        ).number

    try:
        await sync_all()
        assert await shown() == [5, 5, 5]
        await asyncio.to_thread(lamps, one, "ava", 5)  # apart: each sells the 5 lamps
        await asyncio.to_thread(lamps, two, "ben", 5)
        await sync_all()
        assert await shown() == [0, 0, 0]
        stock, owed = await asyncio.to_thread(_real, c.shop, "soho")
        assert stock - owed == -5, (stock, owed)
        for edge in (one, two):
            stock, owed = await asyncio.to_thread(_real, edge, None)
            assert stock - owed == -5, (stock, owed)
        # 4 lamps arrive: still one short. Nothing to show, nothing to sell.
        await asyncio.to_thread(c.shop.restock, "lamp", {"quantity": 4, "site": "soho"})
        await sync_all()
        assert await shown() == [0, 0, 0]
        async with ClientSession() as http:
            order = {"items": [{"product": "lamp", "quantity": 1}], "site": "soho"}
            async with http.post(f"{proc.url}/api/v1/shop/orders", json=order,
                                 headers=member) as r:  # fmt: skip
                assert r.status == 409, await r.text()
        with pytest.raises(OutOfStock):
            await asyncio.to_thread(lamps, one, "ava", 1)
        # 3 more: 2 are really there, shown and sold everywhere, then none.
        await asyncio.to_thread(c.shop.restock, "lamp", {"quantity": 3, "site": "soho"})
        await sync_all()
        assert await shown() == [2, 2, 2]
        await asyncio.to_thread(lamps, two, "ben", 2)
        await sync_all()
        assert await shown() == [0, 0, 0]
        # The oversell stays open at both edges (named, with the shortfall) until staff act.
        for edge in (one, two):
            items = await asyncio.to_thread(list_attention, edge.db)
            open_items = [i for i in items if i.kind in ("oversell", "oversell_held")]
            assert open_items and all("Salt Lamp (lamp)" in i.detail for i in open_items)
            assert await asyncio.to_thread(edge.ledger_mismatches) == []
        assert await asyncio.to_thread(c.shop.ledger_mismatches) == []
    finally:
        for edge in (one, two):
            await off_loop(lambda e=edge: e.db.close())  # type: ignore[misc]


async def test_the_dashboard_resolves_an_oversell_in_one_step(api: ApiSite, browser: Any) -> None:
    """Staff at the spa see the oversell (product, shortfall) on the Sync page and fix it
    there: the restock and the resolution in one submit; it fits a phone."""
    item = await api.core.run_shop(_with_an_oversell)
    before = await api.core.run_shop(lambda s: s.get_product("gua-sha-stone").stock)
    page = await staff_page(api, browser, 390, 844, "#sync")
    card = page.locator('[data-role="attention-item"][data-kind="oversell"]')
    await card.wait_for()
    assert "short by 2" in await card.inner_text()
    assert await card.locator('[data-role="resolve-quantity"]').input_value() == "2"
    assert await overflow(page) <= 0
    assert await serious_violations(page) == []
    await card.locator('[data-role="resolve-action"]').select_option("substitute")
    await card.locator('[data-role="resolve-note"]').wait_for()
    await card.locator('[data-role="resolve-action"]').select_option("restock")
    await card.locator('[data-role="resolve-quantity"]').fill("3")
    await card.locator('[data-role="resolve"]').click()
    await page.get_by_text("Nothing needs attention.").wait_for()
    after = await api.core.run_shop(lambda s: s.get_product("gua-sha-stone").stock)
    assert after == before + 3
    items = await api.core.run_shop(lambda s: list_attention(s.db, include_resolved=True))
    done = next(i for i in items if i.id == item)
    assert done.resolved_at and str(done.resolved_by).endswith(":restock")
    await page.close()
