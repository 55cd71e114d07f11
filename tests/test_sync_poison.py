"""Poison changes and garbage replies.

A change the cloud refuses for good goes to the edge's quarantine with the
reason and an attention item on both sides; the queue behind it keeps flowing.
A cloud reply that is not the protocol is a ``CloudFault`` (retried), never a
``KeyError`` out of the sync job.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from edge.shop import Shop, StorageFailure, ValidationFailed
from sync.attention import list_attention
from sync.client import SyncClient
from sync.edge import EdgeSync
from sync.errors import CloudFault
from sync.poison import is_poison
from sync.testing import CloudProcess
from tests.conftest import free_port
from tests.sync_helpers import Cloud, edge_config, make_edge, off_loop, running_pg_cloud


@pytest.fixture
def pg_cloud() -> Iterator[tuple[Cloud, CloudProcess]]:
    with running_pg_cloud(restock={"gua-sha": 100}) as running:
        yield running


async def _sync(shop: Shop, url: str, secret: str) -> None:
    client = SyncClient(shop, edge_config(url), secret=secret)
    try:
        await client.sync_once()
    finally:
        await client.stop()


def _order(shop: Shop, member: str, notes: str = "") -> str:
    data = {"items": [{"product": "gua-sha", "quantity": 1}], "customer_notes": notes}
    return shop.create_order(member, data).number


def _poison_outbox(shop: Shop, marker: str) -> None:
    """An order whose notes hold a NUL, as an older edge (or a bug) could have queued it."""
    with shop.db.write() as tx:
        for row in tx.all("SELECT seq, payload FROM outbox WHERE payload LIKE ?", (f"%{marker}%",)):
            payload = json.loads(row["payload"])
            payload["customer_notes"] = "gate code \x00 1234"
            tx.execute("UPDATE outbox SET payload = ? WHERE seq = ?",
                       (json.dumps(payload), row["seq"]))  # fmt: skip


async def test_nul_in_notes_on_postgres_is_quarantined_and_the_queue_flows(
    pg_cloud: tuple[Cloud, CloudProcess], tmp_path: Path
) -> None:
    c, proc = pg_cloud
    edge = await off_loop(lambda: make_edge(tmp_path / "edge.db"))
    secret = c.secrets["edge-1"]
    try:
        await _sync(edge, proc.url, secret)
        poisoned = await asyncio.to_thread(_order, edge, c.members["ben"], "POISON-MARK")
        await asyncio.to_thread(_poison_outbox, edge, "POISON-MARK")
        later = [await asyncio.to_thread(_order, edge, c.members["ben"]) for _ in range(3)]
        await _sync(edge, proc.url, secret)  # no 500, no exception
        await _sync(edge, proc.url, secret)  # and nothing stuck behind it
        listed = await off_loop(lambda: c.shop.list_orders(page_size=100).items)
        in_cloud = {o.number for o in listed}
        assert set(later) <= in_cloud, f"later orders missing: cloud has {sorted(in_cloud)}"
        assert poisoned not in in_cloud
        cloud_all = await off_loop(lambda: list_attention(c.shop.db))
        cloud_items = [a for a in cloud_all if a.kind == "rejected_change"]
        assert len(cloud_items) == 1 and "NUL" in cloud_items[0].detail, cloud_items
        assert "customer_notes" in cloud_items[0].detail
        edge_all = await off_loop(lambda: list_attention(edge.db))
        edge_items = [a for a in edge_all if a.kind == "change_quarantined"]
        assert len(edge_items) == 1 and "NUL" in edge_items[0].detail, edge_items
        status = await off_loop(lambda: EdgeSync(edge).status())
        assert status["quarantined"] == 1 and status["queue_depth"] == 0
        here = await off_loop(lambda: edge.get_product("gua-sha").stock)
        assert here == await off_loop(lambda: c.shop.get_product("gua-sha").stock)
    finally:
        await off_loop(lambda: edge.db.close())


def test_storage_trouble_is_retried_a_bad_value_is_not() -> None:
    assert not is_poison(StorageFailure("disk I/O error"))
    assert is_poison(ValidationFailed("payload.customer_notes", "NUL"))
    assert is_poison(KeyError("number"))


GOOD_HELLO = {"incarnation": "x", "verdict": "ok", "leases": []}
EMPTY_PAGE = {"changes": [], "next_cursor": 0, "more": False}
NO_OP = {"origin": "cloud", "origin_seq": 1, "entity": "order", "entity_id": "x",
         "payload": {}, "created_at": "t"}  # fmt: skip
GARBAGE: dict[str, tuple[dict[str, Any], str]] = {
    "lease without block": ({"sync/lease": {"kind": "PO", "year": 2026}}, "'block'"),
    "block as text": ({"sync/lease": {"block": "7"}}, "'block'"),
    "block as boolean": ({"sync/lease": {"block": True}}, "'block'"),
    "pull page as list": ({"sync/pull": [1, 2]}, "JSON object"),
    "pull change missing op": ({"sync/pull": {"changes": [NO_OP], "next_cursor": 1}}, "'op'"),
    "hello without verdict": ({"sync/hello": {"leases": []}}, "'verdict'"),
    "lease list of strings": ({"sync/hello": {"verdict": "ok", "leases": ["x"]}}, "object"),
}


@pytest.fixture
async def garbage_cloud(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A stand-in cloud that answers one route with garbage: the fault to inject."""
    replies: dict[str, Any] = {"sync/hello": GOOD_HELLO, "sync/pull": EMPTY_PAGE,
                               "sync/recover": EMPTY_PAGE,
                               **request.param}  # fmt: skip

    async def handle(r: web.Request) -> web.Response:
        return web.json_response(replies[r.match_info["tail"]])

    app = web.Application()
    app.router.add_route("*", "/api/v1/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.mark.parametrize(
    ("garbage_cloud", "names"),
    list(GARBAGE.values()),
    ids=list(GARBAGE),
    indirect=["garbage_cloud"],
)
async def test_a_garbage_reply_is_a_cloud_fault(
    garbage_cloud: str, names: str, tmp_path: Path
) -> None:
    edge = await off_loop(lambda: make_edge(tmp_path / "edge.db"))
    try:
        with pytest.raises(CloudFault, match=names):
            await _sync(edge, garbage_cloud, "secret")
        assert await off_loop(lambda: EdgeSync(edge).status()["last_error"])
    finally:
        await off_loop(lambda: edge.db.close())
