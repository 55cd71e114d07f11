"""Sync figures over loopback with a real ``coresync-cloud`` process (SQLite).

1. drain 10,000 queued edge changes (5,000 counter orders) to the cloud;
2. catch up 10,000 remote changes on a fresh edge;
3. an idle cycle: requests and bytes when nothing changed;
4. the same drain with 20 % of connections dropped/cut, with proof of no duplicates.

Run: .venv/bin/python bench/bench_sync.py
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.shop import Shop, SqliteDatabase
from sync.client import SyncClient
from sync.edge import EdgeSync
from sync.testing import CloudProcess, FaultProxy
from tests.conftest import free_port
from tests.sync_helpers import assert_converged, edge_config, make_edge, prepare_cloud

ORDERS = 5000  # two outbox changes each: the sale movement and the order


def fed(cloud: Shop, node: str) -> int:
    with cloud.db.read() as tx:
        return int(tx.scalar("SELECT COUNT(*) AS n FROM sync_changes WHERE origin = ?", (node,)))


async def drain(edge: Shop, url: str, secret: str, *, keep_alive: bool = True) -> float:
    cfg = edge_config(url, batch_size=200, backoff_min_s=0.01, backoff_max_s=0.1)
    client = SyncClient(edge, cfg, secret=secret, keep_alive=keep_alive)
    start = time.perf_counter()
    task = asyncio.create_task(client.run(), name="bench-sync")
    store = EdgeSync(edge)
    while True:
        await asyncio.sleep(0.02)
        if store.status()["queue_depth"] == 0 and store.status()["last_success"]:
            break
    elapsed = time.perf_counter() - start
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await client.stop()
    return elapsed


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    base = tmp / "base"
    base.mkdir()
    cloud_db = SqliteDatabase(str(base / "cloud.db"))
    cloud = prepare_cloud(Shop(cloud_db), ("edge-1", "edge-2"))
    cloud.shop.restock("gua-sha", {"quantity": 1_000_000})
    cloud_db.close()
    proc = CloudProcess(str(base / "cloud.db"), free_port())
    proc.start()
    edge = make_edge(base / "edge.db")
    # Enough leased numbers for the offline burst below.
    cfg = edge_config(proc.url, numbers_low_water=ORDERS + 1000)
    c = SyncClient(edge, cfg, secret=cloud.secrets["edge-1"])
    await c.sync_once()
    await c.stop()
    proc.stop()
    print(f"queueing {ORDERS} counter orders ({2 * ORDERS} changes) ...", flush=True)
    for _ in range(ORDERS):
        edge.create_order(cloud.members["ben"], {"items": [{"product": "gua-sha", "quantity": 1}]})
    edge.db.close()
    for run in ("clean", "lossy"):
        shutil.copytree(base, tmp / run)

    # 1 + 3 + 2: clean drain, idle cycle, catch-up on a fresh edge
    proc = CloudProcess(str(tmp / "clean" / "cloud.db"), free_port())
    proc.start()
    edge = make_edge(tmp / "clean" / "edge.db")
    queued = EdgeSync(edge).queue_depth()
    t = await drain(edge, proc.url, cloud.secrets["edge-1"])
    print(f"drain {queued} changes over loopback: {t:.2f} s ({queued / t:.0f} changes/s)")
    proxy = FaultProxy("127.0.0.1", proc.port)
    await proxy.start()
    idle = SyncClient(edge, edge_config(f"http://127.0.0.1:{proxy.port}"),
                      secret=cloud.secrets["edge-1"])  # fmt: skip
    await idle.sync_once()
    proxy.upstream.clear()
    proxy.downstream.clear()
    report = await idle.sync_once()
    await idle.stop()
    up, down = sum(map(len, proxy.upstream)), sum(map(len, proxy.downstream))
    print(f"idle cycle: {report.requests} request(s), {up} B up, {down} B down")
    await proxy.stop()
    fresh = make_edge(tmp / "clean" / "edge2.db", "edge-2")
    catch = SyncClient(fresh, edge_config(proc.url, "edge-2", batch_size=500),
                       secret=cloud.secrets["edge-2"])  # fmt: skip
    start = time.perf_counter()
    r = await catch.sync_once()
    t = time.perf_counter() - start
    await catch.stop()
    print(f"catch up {r.pulled} remote changes on a fresh edge: {t:.2f} s ({r.pulled / t:.0f}/s)")
    check = Shop(SqliteDatabase(str(tmp / "clean" / "cloud.db")))
    assert_converged(edge, fresh, check)
    proc.stop()

    # 4: the same drain with 20 % of connections refused or cut mid-request/response
    proc = CloudProcess(str(tmp / "lossy" / "cloud.db"), free_port())
    proc.start()
    proxy = FaultProxy("127.0.0.1", proc.port, seed=7)
    proxy.drop_rate = 0.2
    await proxy.start()
    edge = make_edge(tmp / "lossy" / "edge.db")
    # A new connection per request, so the proxy's per-connection faults hit 20 % of requests.
    url = f"http://127.0.0.1:{proxy.port}"
    t = await drain(edge, url, cloud.secrets["edge-1"], keep_alive=False)
    print(f"drain {queued} changes, 20 % of connections faulted: {t:.2f} s "
          f"({proxy.faults} faults in {proxy.connections} connections)")  # fmt: skip
    cloud_check = Shop(SqliteDatabase(str(tmp / "lossy" / "cloud.db")))
    with cloud_check.db.read() as tx:
        dup = tx.scalar("SELECT COUNT(*) AS n FROM (SELECT number FROM orders GROUP BY number"
                        " HAVING COUNT(*) > 1) d")  # fmt: skip
        n_orders = tx.scalar("SELECT COUNT(*) AS n FROM orders WHERE origin_node = 'edge-1'")
    print(
        f"  cloud feed rows from edge-1: {fed(cloud_check, 'edge-1')} (queued {queued}); "
        f"edge orders in cloud: {n_orders} (made {ORDERS}); duplicate numbers: {dup}"
    )
    assert fed(cloud_check, "edge-1") == queued and n_orders == ORDERS and dup == 0
    await proxy.stop()
    proc.stop()
    shutil.rmtree(tmp)


if __name__ == "__main__":
    asyncio.run(main())
