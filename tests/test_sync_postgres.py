"""The same sync guarantees with the cloud on PostgreSQL (own schema)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from edge.shop import Shop
from sync.client import SyncClient
from sync.errors import CloudUnreachable
from sync.testing import CloudProcess, Fault, FaultProxy
from tests.sync_helpers import (
    Cloud,
    assert_converged,
    edge_config,
    make_edge,
    off_loop,
    running_pg_cloud,
)


@pytest.fixture
def pg_cloud() -> Iterator[tuple[Cloud, CloudProcess]]:
    with running_pg_cloud(restock={"gua-sha": 1000}) as running:
        yield running


@pytest.fixture
async def proxy(pg_cloud: tuple[Cloud, CloudProcess]) -> AsyncIterator[FaultProxy]:
    p = FaultProxy("127.0.0.1", pg_cloud[1].port)
    await p.start()
    yield p
    await p.stop()


async def _sync(shop: Shop, c: Cloud, proxy: FaultProxy, node: str = "edge-1") -> None:
    client = SyncClient(shop, edge_config(f"http://127.0.0.1:{proxy.port}", node),
                        secret=c.secrets[node])  # fmt: skip
    try:
        await client.sync_once()
    finally:
        await client.stop()


def _order(shop: Shop, member: str, slug: str, qty: int = 1) -> str:
    return shop.create_order(member, {"items": [{"product": slug, "quantity": qty}]}).id


async def test_postgres_cloud_dedupes_retries_and_flags_oversell(
    pg_cloud: tuple[Cloud, CloudProcess], proxy: FaultProxy, tmp_path: Path
) -> None:
    c, _ = pg_cloud
    edge = await off_loop(lambda: make_edge(tmp_path / "edge.db"))
    other = await off_loop(lambda: make_edge(tmp_path / "edge2.db", "edge-2"))
    try:
        await _sync(edge, c, proxy)
        await _sync(other, c, proxy, "edge-2")
        for _ in range(40):
            await asyncio.to_thread(_order, edge, c.members["ben"], "gua-sha")
        await asyncio.to_thread(_order, edge, c.members["ben"], "robe")
        await asyncio.to_thread(_order, other, c.members["ava"], "robe")  # same last robe
        await asyncio.to_thread(_order, c.shop, c.members["ava"], "gua-sha", 2)
        proxy.fail_next(Fault("cut_response", after_bytes=20), Fault("http_503"))
        for _ in range(2):
            with pytest.raises(CloudUnreachable):
                await _sync(edge, c, proxy)
        await _sync(edge, c, proxy)
        await _sync(other, c, proxy, "edge-2")
        await _sync(edge, c, proxy)
        await off_loop(lambda: assert_converged(edge, other, c.shop))
        assert await off_loop(lambda: c.shop.list_orders().total == 43)
        with c.shop.db.read() as tx:
            kinds = [r["kind"] for r in tx.all("SELECT kind FROM sync_attention")]
        assert kinds == ["oversell"]
    finally:
        await off_loop(lambda: edge.db.close())
        await off_loop(lambda: other.db.close())
