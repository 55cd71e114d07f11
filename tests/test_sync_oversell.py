"""Oversells are seen where they are fixed: at the edge, named (product and
shortfall), open until staff resolve them, with a one-step resolve on the LAN API.

Before, the edge's item resolved itself once the cloud's hold arrived, so staff
at the spa never saw it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.shop import Shop
from edge.shop.demo_seed import seed_demo_shop
from sync.attention import list_attention
from sync.client import SyncClient
from sync.oversell import raise_oversell
from sync.schema import migrate_sync
from sync.testing import CloudProcess
from tests.sync_helpers import Cloud, edge_config, make_edge, off_loop, running_cloud
from tests.test_api_support import ApiSite, api

__all__ = ["api"]


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
