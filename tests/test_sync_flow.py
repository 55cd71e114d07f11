"""Sync between an edge Shop (real SQLite file) and a real ``coresync-cloud`` process.

A fault-injecting TCP proxy sits between them; every fault must leave both
sides with the same orders, requests and stock, with nothing duplicated.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from edge.shop import Shop
from edge.shop.testing import MutableClock
from sync.attention import AttentionItem, list_attention
from sync.client import SyncClient
from sync.edge import EdgeSync
from sync.errors import BiometricDataRefused, CloudUnreachable
from sync.privacy import biometric_keys
from sync.testing import CloudProcess, Fault, FaultProxy
from tests.sync_helpers import (
    Cloud,
    assert_converged,
    edge_config,
    make_edge,
    now,
    off_loop,
    running_cloud,
    scalar,
    snapshot,
)


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[tuple[Cloud, CloudProcess]]:
    with running_cloud(tmp_path / "cloud.db", ("edge-1", "edge-2")) as running:
        yield running


@pytest.fixture
async def proxy(cloud: tuple[Cloud, CloudProcess]) -> AsyncIterator[FaultProxy]:
    p = FaultProxy("127.0.0.1", cloud[1].port)
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Shop]:
    shop = make_edge(tmp_path / "edge.db")
    yield shop
    shop.db.close()


def client(shop: Shop, cloud: Cloud, proxy: FaultProxy, node: str = "edge-1") -> SyncClient:
    url = f"http://127.0.0.1:{proxy.port}"
    return SyncClient(shop, edge_config(url, node), secret=cloud.secrets[node])


async def sync(shop: Shop, cloud: Cloud, proxy: FaultProxy, node: str = "edge-1") -> None:
    c = client(shop, cloud, proxy, node)
    try:
        await c.sync_once()
    finally:
        await c.stop()


def order(shop: Shop, member: str, *lines: tuple[str, int]) -> str:
    items = [{"product": slug, "quantity": q} for slug, q in lines]
    return shop.create_order(member, {"items": items}).id


async def test_orders_stock_and_numbers_flow_both_ways(
    cloud: tuple[Cloud, CloudProcess], proxy: FaultProxy, edge: Shop
) -> None:
    c, _ = cloud
    await sync(edge, c, proxy)
    assert await off_loop(lambda: edge.get_product("serum").stock) == 5
    assert await off_loop(lambda: edge.spare_numbers("PO")) >= 1000
    ava = c.members["ava"]
    counter = await asyncio.to_thread(order, edge, ava, ("serum", 2))
    await asyncio.to_thread(edge.set_order_status, counter, {"status": "processing"})
    web = await asyncio.to_thread(order, c.shop, ava, ("gua-sha", 3))
    await sync(edge, c, proxy)
    assert await off_loop(lambda: c.shop.get_order(counter).status == "processing")
    assert await off_loop(lambda: edge.get_order(web).number == c.shop.get_order(web).number)
    assert await off_loop(lambda: edge.get_product("gua-sha").stock) == 17
    assert await off_loop(lambda: c.shop.get_product("gua-sha").stock) == 17
    await off_loop(lambda: assert_converged(edge, c.shop))


async def test_cuts_and_5xx_never_duplicate_or_lose(
    cloud: tuple[Cloud, CloudProcess], proxy: FaultProxy, edge: Shop
) -> None:
    c, _ = cloud
    await sync(edge, c, proxy)
    for _ in range(15):
        await asyncio.to_thread(order, edge, c.members["ben"], ("gua-sha", 1))
    await asyncio.to_thread(order, c.shop, c.members["ava"], ("serum", 1))
    faults = [Fault("cut_request", after_bytes=300), Fault("cut_response", after_bytes=40),
              Fault("http_503"), Fault("refuse"), Fault("cut_response", after_bytes=5)]  # fmt: skip
    for fault in faults:
        proxy.fail_next(fault)
        with pytest.raises(CloudUnreachable):
            await sync(edge, c, proxy)
    assert await off_loop(lambda: EdgeSync(edge).status()["last_error"])
    await sync(edge, c, proxy)
    await off_loop(lambda: assert_converged(edge, c.shop))
    sql = "SELECT COUNT(*) AS n FROM sync_changes WHERE origin = 'edge-1'"
    fed = await off_loop(lambda: scalar(c.shop, sql))
    assert await off_loop(lambda: fed == EdgeSync(edge).cursors()[0] - _not_pushed(edge))
    assert await off_loop(lambda: EdgeSync(edge).status()["queue_depth"] == 0)


def _not_pushed(shop: Shop) -> int:
    with shop.db.read() as tx:
        return int(
            tx.scalar("SELECT COUNT(*) AS n FROM outbox WHERE entity IN ('product', 'consent')")
        )


async def test_oversell_after_sync_is_flagged_not_hidden(
    cloud: tuple[Cloud, CloudProcess], proxy: FaultProxy, edge: Shop
) -> None:
    c, proc = cloud
    await sync(edge, c, proxy)
    # The last robe sells twice while the edge is offline: once at the counter, once online.
    counter = await asyncio.to_thread(order, edge, c.members["ben"], ("robe", 1))
    web = await asyncio.to_thread(order, c.shop, c.members["ava"], ("robe", 1))
    await sync(edge, c, proxy)
    await sync(edge, c, proxy)
    await off_loop(lambda: assert_converged(edge, c.shop))
    assert await off_loop(lambda: edge.get_order(counter) and c.shop.get_order(web))
    token, _, _ = await asyncio.to_thread(_staff_token, c)
    async with aiohttp.ClientSession() as http:
        r = await http.get(f"{proc.url}/api/v1/sync/attention",
                           headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        items = (await r.json())["items"]
    assert [i["kind"] for i in items] == ["oversell"]
    assert items[0]["data"]["short"] == 1
    assert await off_loop(lambda: EdgeSync(edge).status()["held_stock_movements"] == 0)


def _staff_token(c: Cloud) -> tuple[str, str, object]:
    c.auth.create_staff("boss@example.com", "Boss", "pw-123456", "manager")
    return c.auth.login("boss@example.com", "pw-123456")


async def test_cancel_racing_a_completed_pickup_is_flagged(
    cloud: tuple[Cloud, CloudProcess], proxy: FaultProxy, edge: Shop
) -> None:
    c, _ = cloud
    await sync(edge, c, proxy)
    oid = await asyncio.to_thread(order, c.shop, c.members["ava"], ("serum", 2))
    await sync(edge, c, proxy)
    for status in ("processing", "ready", "completed"):
        await asyncio.to_thread(edge.set_order_status, oid, {"status": status})
    await asyncio.to_thread(c.shop.cancel_order, oid)  # the member cancels online meanwhile
    await sync(edge, c, proxy)
    assert await off_loop(lambda: c.shop.get_order(oid).status) == "completed"
    assert await off_loop(lambda: edge.get_order(oid).status) == "completed"
    assert await off_loop(lambda: edge.get_product("serum").stock) == 3
    assert await off_loop(lambda: c.shop.get_product("serum").stock) == 3
    await off_loop(lambda: assert_converged(edge, c.shop))
    kinds = await off_loop(lambda: {a.kind for a in _attention(c.shop)})
    assert {"cancelled_vs_completed", "cancellation_reversed"} <= kinds
    assert await off_loop(lambda: "cancelled_vs_completed" in {a.kind for a in _attention(edge)})


def _attention(shop: Shop) -> list[AttentionItem]:
    return list_attention(shop.db)


async def test_member_end_and_consent_withdrawal_reach_the_hook(
    cloud: tuple[Cloud, CloudProcess], proxy: FaultProxy, edge: Shop
) -> None:
    c, _ = cloud
    await sync(edge, c, proxy)
    calls: list[tuple[str, bool, bool]] = []

    async def hook(member_id: str, active: bool, consent: bool) -> None:
        calls.append((member_id, active, consent))

    await asyncio.to_thread(c.shop.set_membership, c.members["ben"], tier="basic", active=False)
    async with aiohttp.ClientSession() as http:
        token = c.members["ava"]
        await asyncio.to_thread(c.auth.issue_member_token, token, "tok-ava-123")
        r = await http.post(f"http://127.0.0.1:{proxy.port}/api/v1/members/{token}/consent",
                            json={"biometric": False},
                            headers={"Authorization": "Bearer tok-ava-123"})  # fmt: skip
        assert r.status == 200, await r.text()
    s = SyncClient(edge, edge_config(f"http://127.0.0.1:{proxy.port}"),
                   secret=c.secrets["edge-1"], on_member_change=hook)  # fmt: skip
    try:
        await s.sync_once()
    finally:
        await s.stop()
    assert (c.members["ben"], False, True) in calls
    assert (c.members["ava"], True, False) in calls
    assert await off_loop(lambda: EdgeSync(edge).member_events() == [])


async def test_attendance_goes_up_without_biometric_data(
    cloud: tuple[Cloud, CloudProcess], proxy: FaultProxy, edge: Shop
) -> None:
    c, _ = cloud
    await sync(edge, c, proxy)
    store = await off_loop(lambda: EdgeSync(edge))
    with pytest.raises(ValueError, match="face_template"):
        store.record_attendance({"member_id": "m", "door": "front", "direction": "in",
                                 "at": now(), "face_template": [0.1, 0.2]})  # fmt: skip
    for i in range(3):
        await asyncio.to_thread(store.record_attendance, {"member_id": c.members["ava"],
                                "door": f"door-{i}", "direction": "in", "at": now()})  # fmt: skip
    await asyncio.to_thread(order, edge, c.members["ava"], ("serum", 1))
    proxy.upstream.clear()
    await sync(edge, c, proxy)
    sql = "SELECT COUNT(*) AS n FROM attendance_events"
    assert await off_loop(lambda: scalar(c.shop, sql)) == 3
    bodies = [json.loads(b) for b in _request_bodies(b"".join(proxy.upstream)) if b]
    payloads = [ch["payload"] for b in bodies if "changes" in b for ch in b["changes"]]
    assert payloads and any("door" in p for p in payloads)
    assert all(biometric_keys(p) == [] for p in payloads)
    # Defence in depth: a biometric field smuggled into the outbox is never sent.
    await off_loop(lambda: _smuggle(edge))
    with pytest.raises(BiometricDataRefused):
        await sync(edge, c, proxy)


def _smuggle(edge: Shop) -> None:
    with edge.db.write() as tx:
        edge.record_change(tx, "attendance", "x", "door", {"member_id": "m", "embedding": [1]})


def _request_bodies(raw: bytes) -> list[bytes]:
    """Split a captured HTTP/1.1 request stream into bodies (Content-Length framing)."""
    bodies = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        bodies.append(rest[:length])
        raw = rest[length:]
    return bodies


async def test_edge_clock_hours_off_changes_nothing(
    cloud: tuple[Cloud, CloudProcess], proxy: FaultProxy, tmp_path: Path
) -> None:
    c, _ = cloud
    clock = MutableClock(now() - timedelta(hours=9))
    skewed = await off_loop(lambda: make_edge(tmp_path / "skewed.db", clock=clock))
    try:
        await sync(skewed, c, proxy)
        oid = await asyncio.to_thread(order, skewed, c.members["ava"], ("serum", 1))
        web = await asyncio.to_thread(order, c.shop, c.members["ben"], ("serum", 1))
        await sync(skewed, c, proxy)
        assert await off_loop(lambda: c.shop.get_order(oid).status) == "pending"
        assert await off_loop(lambda: skewed.get_order(web))
        await off_loop(lambda: assert_converged(skewed, c.shop))
    finally:
        await off_loop(lambda: skewed.db.close())


async def test_two_edges_and_the_cloud_keep_numbers_unique(
    cloud: tuple[Cloud, CloudProcess], proxy: FaultProxy, edge: Shop, tmp_path: Path
) -> None:
    c, _ = cloud
    other = await off_loop(lambda: make_edge(tmp_path / "edge2.db", "edge-2"))
    try:
        await sync(edge, c, proxy)
        await sync(other, c, proxy, "edge-2")
        for _ in range(5):
            await asyncio.to_thread(order, edge, c.members["ben"], ("gua-sha", 1))
            await asyncio.to_thread(order, other, c.members["ben"], ("gua-sha", 1))
            await asyncio.to_thread(order, c.shop, c.members["ava"], ("gua-sha", 1))
        await sync(edge, c, proxy)
        await sync(other, c, proxy, "edge-2")
        await sync(edge, c, proxy)
        await off_loop(lambda: assert_converged(edge, other, c.shop))
        assert await off_loop(lambda: len(snapshot(c.shop)["orders"]) == 15)
        assert await off_loop(lambda: c.shop.get_product("gua-sha").stock == 5)
    finally:
        await off_loop(lambda: other.db.close())
