"""Harder faults: the sync client killed with SIGKILL mid-drain, the cloud restarted
under a running sync job, and a week of offline trading on both sides."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from edge.shop import Shop
from edge.shop.testing import MutableClock
from sync.client import SyncClient
from sync.cloud import CloudSync
from sync.edge import EdgeSync
from sync.errors import CloudUnreachable
from sync.testing import CloudProcess, FaultProxy
from tests.conftest import REPO
from tests.sync_helpers import (
    Cloud,
    assert_converged,
    edge_config,
    make_edge,
    now,
    off_loop,
    running_cloud,
)


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[tuple[Cloud, CloudProcess]]:
    restock = {"gua-sha": 100_000, "serum": 50}
    with running_cloud(tmp_path / "cloud.db", restock=restock) as running:
        yield running


def _orders(shop: Shop, member: str, n: int) -> None:
    for _ in range(n):
        shop.create_order(member, {"items": [{"product": "gua-sha", "quantity": 1}]})


def _fed(cloud: Cloud, node: str = "edge-1") -> int:
    with cloud.shop.db.read() as tx:
        return int(tx.scalar("SELECT COUNT(*) AS n FROM sync_changes WHERE origin = ?", (node,)))


def _pushable(shop: Shop) -> int:
    with shop.db.read() as tx:
        return int(tx.scalar("SELECT COUNT(*) AS n FROM outbox WHERE entity NOT IN"
                             " ('product', 'consent')"))  # fmt: skip


def _sync_cli(db: Path, url: str, secret: str, *, loop: bool) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CORESYNC_NODE_SECRET": secret, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "sync", "--db", str(db), "--url", url, "--node", "edge-1",
            "--batch-size", "25", *(["--loop"] if loop else [])]  # fmt: skip
    return subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip


def test_sync_client_killed_mid_drain_then_restarted(
    cloud: tuple[Cloud, CloudProcess], tmp_path: Path
) -> None:
    c, proc = cloud
    edge = make_edge(tmp_path / "edge.db")
    try:
        first = _sync_cli(tmp_path / "edge.db", proc.url, c.secrets["edge-1"], loop=False)
        assert first.wait(60) == 0
        _orders(edge, c.members["ben"], 400)
        total = _pushable(edge)
        for attempt in range(3):  # kill it several times at different points
            runner = _sync_cli(tmp_path / "edge.db", proc.url, c.secrets["edge-1"], loop=True)
            target = total * (attempt + 1) // 4
            deadline = time.monotonic() + 60
            while _fed(c) < target and time.monotonic() < deadline:
                time.sleep(0.01)
            runner.send_signal(signal.SIGKILL)
            runner.wait()
        assert _fed(c) < total, "the drain finished before the last kill; kill earlier"
        last = _sync_cli(tmp_path / "edge.db", proc.url, c.secrets["edge-1"], loop=False)
        assert last.wait(60) == 0
        assert _fed(c) == total
        assert EdgeSync(edge).status()["queue_depth"] == 0
        assert_converged(edge, c.shop)
    finally:
        edge.db.close()


async def test_cloud_restart_under_a_running_job(
    cloud: tuple[Cloud, CloudProcess], tmp_path: Path
) -> None:
    c, proc = cloud
    edge = await off_loop(lambda: make_edge(tmp_path / "edge.db"))
    job = SyncClient(edge, edge_config(proc.url), secret=c.secrets["edge-1"])
    task = asyncio.create_task(job.run(), name="sync-job")
    try:
        await asyncio.wait_for(job.connected(), 30)
        await asyncio.to_thread(proc.stop)
        await asyncio.to_thread(_orders, edge, c.members["ben"], 20)
        await asyncio.to_thread(_orders, c.shop, c.members["ava"], 10)
        await asyncio.wait_for(job.disconnected(), 30)
        assert (await asyncio.to_thread(lambda: EdgeSync(edge).status()))["last_error"]
        await asyncio.to_thread(proc.start)

        def converged() -> bool:
            if _fed(c) != _pushable(edge) or edge.list_orders().total != 30:
                return False
            try:
                assert_converged(edge, c.shop)
            except AssertionError:
                return False
            return True

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not await asyncio.to_thread(converged):
            assert loop.time() < deadline, "edge and cloud did not converge in 60 s"
            await asyncio.sleep(0.05)
        await asyncio.to_thread(assert_converged, edge, c.shop)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await job.stop()
        await off_loop(lambda: edge.db.close())


async def test_a_week_offline_on_both_sides(
    cloud: tuple[Cloud, CloudProcess], tmp_path: Path
) -> None:
    c, proc = cloud
    clock = MutableClock(now())
    edge = await off_loop(lambda: make_edge(tmp_path / "edge.db", clock=clock))
    proxy = FaultProxy("127.0.0.1", proc.port)
    await proxy.start()
    job = SyncClient(edge, edge_config(f"http://127.0.0.1:{proxy.port}"),
                     secret=c.secrets["edge-1"])  # fmt: skip
    try:
        await job.sync_once()
        await proxy.set_offline(True)
        for day in range(7):
            clock.advance(timedelta(days=1))
            await asyncio.to_thread(_day_of_trade, edge, c, day)
            with pytest.raises(CloudUnreachable):
                await job.sync_once()
        assert await off_loop(lambda: EdgeSync(edge).status()["queue_depth"] > 7 * 25)
        await proxy.set_offline(False)
        await job.sync_once()
        await off_loop(lambda: assert_converged(edge, c.shop))
        assert await off_loop(lambda: edge.list_orders().total == 7 * 30)
        assert await off_loop(lambda: edge.spare_numbers("PO", clock().year) >= 1000)
    finally:
        await job.stop()
        await proxy.stop()
        await off_loop(lambda: edge.db.close())


def _day_of_trade(edge: Shop, c: Cloud, day: int) -> None:
    _orders(edge, c.members["ben"], 20)
    _orders(c.shop, c.members["ava"], 10)
    for o in edge.list_orders(status="pending", page_size=5).items:
        edge.set_order_status(o.id, {"status": "processing"})
    edge.restock("serum", {"quantity": 2, "note": f"delivery day {day}"})
    c.shop.adjust_stock("serum", {"delta": -1, "reason": "breakage"})


async def test_a_kill_between_taking_a_block_and_forgetting_its_lease_key(
    cloud: tuple[Cloud, CloudProcess], tmp_path: Path
) -> None:
    """The edge holds a leased block but still has the lease's request key pending (the
    state a SIGKILL between ``accept_lease`` and forgetting the key leaves).  Asking again
    with that key gets the same block once; the top-up then asks with a new key and
    gets a new block: no block twice, no endless asking."""
    c, proc = cloud
    edge = await off_loop(lambda: make_edge(tmp_path / "edge.db"))
    job = SyncClient(edge, edge_config(proc.url, numbers_low_water=1500),
                     secret=c.secrets["edge-1"])  # fmt: skip
    try:
        await job.sync_once()
        year = await off_loop(lambda: edge.today().year)
        store = EdgeSync(edge)
        key = await off_loop(lambda: store.lease_key("PO", year))
        inc = await off_loop(store.incarnation_id)
        block = await off_loop(lambda: CloudSync(c.shop).lease("edge-1", key, "PO", year, inc))
        await off_loop(lambda: edge.accept_lease("PO", block, year))  # killed here, key kept
        held = await off_loop(lambda: edge.spare_numbers("PO", year))
        job.cfg = edge_config(proc.url, numbers_low_water=held + 1)
        await asyncio.wait_for(job.sync_once(), 30)
        assert await off_loop(lambda: edge.spare_numbers("PO", year)) == held + 1000
        with c.shop.db.read() as tx:
            blocks = [r["block"] for r in tx.all(
                "SELECT block FROM sync_leases WHERE node = 'edge-1' AND kind = 'PO'"
                " AND year = ? ORDER BY block", (year,))]  # fmt: skip
        assert blocks == [0, 1, block, block + 1]
    finally:
        await job.stop()
        await off_loop(lambda: edge.db.close())
