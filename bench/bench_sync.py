"""Sync figures over loopback with a real ``coresync-cloud`` process (SQLite).

1. drain 10,000 queued edge changes (5,000 counter orders) to the cloud;
2. catch up 10,000 remote changes on a fresh edge;
3. an idle cycle: requests and bytes when nothing changed;
4. the same drain with 20 % of connections dropped/cut, with proof of no duplicates;
5. the 10,000-change drain to a PostgreSQL cloud (``coresync-cloud serve``, 2 workers);
6. a chain-sized run on PostgreSQL: 50 sites x 2 nodes, 100 counter orders each, every
   node syncing at once; checks every order arrived once and each site's ledger; then
   10 orders per node are picked up (3 status changes each) and the feed is compacted:
   its rows before and after.

Run: .venv/bin/python bench/bench_sync.py [--only sqlite|postgres|chain]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.shop import PostgresDatabase, Shop, ShopConfig, SqliteDatabase
from edge.shop.testing import PG_DSN, postgres_schema, postgres_unreachable
from sync import sites
from sync.client import SyncClient
from sync.cloud import CloudSync
from sync.compact import compact
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


async def drain_postgres(workers: int = 2) -> None:
    with postgres_schema() as schema:
        db = PostgresDatabase(PG_DSN, schema=schema, pool_size=4)
        cloud = prepare_cloud(Shop(db), ("edge-1",))
        cloud.shop.restock("gua-sha", {"quantity": 1_000_000})
        proc = CloudProcess(PG_DSN, free_port(), schema=schema, workers=workers)
        proc.start()
        tmp = Path(tempfile.mkdtemp(prefix="bench-sync-pg-"))
        edge = make_edge(tmp / "edge.db")
        try:
            cfg = edge_config(proc.url, numbers_low_water=ORDERS + 1000)
            c = SyncClient(edge, cfg, secret=cloud.secrets["edge-1"])
            await c.sync_once()
            await c.stop()
            for _ in range(ORDERS):
                edge.create_order(cloud.members["ben"],
                                  {"items": [{"product": "gua-sha", "quantity": 1}]})  # fmt: skip
            queued = EdgeSync(edge).queue_depth()
            t = await drain(edge, proc.url, cloud.secrets["edge-1"])
            print(f"drain {queued} changes to PostgreSQL ({workers} workers): {t:.2f} s "
                  f"({queued / t:.0f} changes/s)")  # fmt: skip
            assert fed(cloud.shop, "edge-1") == queued
        finally:
            proc.stop()
            edge.db.close()
            db.close()
            shutil.rmtree(tmp)


async def compaction(
    sync: CloudSync, edges: dict[str, Shop], nodes: dict[str, str],
    once: Callable[[str], Awaitable[int]], picked_up: int,
) -> None:  # fmt: skip
    """Each node takes ``picked_up`` of its orders through processing, ready and completed
    (three more feed rows each); then the feed is compacted."""
    for shop in edges.values():
        with shop.db.read() as tx:
            ids = [r["id"] for r in tx.all("SELECT id FROM orders WHERE origin_node = ?"
                                           " ORDER BY number LIMIT ?",
                                           (shop.config.node_id, picked_up))]  # fmt: skip
        for oid in ids:
            for status in ("processing", "ready", "completed"):
                shop.set_order_status(oid, {"status": status})
    for _ in range(2):  # push, then a pull that tells the cloud every node's cursor
        await asyncio.gather(*(once(n) for n in nodes))
    t0 = time.perf_counter()
    done = await asyncio.to_thread(compact, sync)
    t = time.perf_counter() - t0
    print(f"  feed compaction after {picked_up} orders per node were picked up: "
          f"{done.rows_before} rows -> {done.rows_after} ({done.removed} removed,"
          f" {done.rewritten} rewritten) in {t:.2f} s")  # fmt: skip


async def chain(
    n_sites: int = 50, per_site: int = 2, orders: int = 100, workers: int = 2, picked_up: int = 10
) -> None:
    """Every node of a 50-spa chain pushes its day's counter orders at once."""
    with postgres_schema() as schema:
        db = PostgresDatabase(PG_DSN, schema=schema, pool_size=4)
        cloud = prepare_cloud(Shop(db), ())
        sync = CloudSync(cloud.shop)
        nodes: dict[str, str] = {}
        for i in range(n_sites):
            site = f"s{i:02d}"
            sites.add_site(db, site, f"Spa {i}", "0.08", "America/New_York")
            cloud.shop.restock("gua-sha", {"quantity": 10_000, "site": site})
            sync.enroll(cloud.members["ben"], site, "bench")
            for n in range(per_site):
                nodes[f"{site}-{n}"] = site
        secrets = {n: cloud.auth.register_node(n, s) for n, s in nodes.items()}
        proc = CloudProcess(PG_DSN, free_port(), schema=schema, workers=workers)
        proc.start()
        tmp = Path(tempfile.mkdtemp(prefix="bench-chain-"))
        edges = {}
        try:
            for n, site in nodes.items():
                shop = Shop(SqliteDatabase(str(tmp / f"{n}.db")),
                            ShopConfig(node_id=n, number_authority=False, site=site))  # fmt: skip
                shop.migrate()
                edges[n] = shop
            gate = asyncio.Semaphore(10)

            async def once(n: str) -> int:
                async with gate:
                    cfg = edge_config(proc.url, n, batch_size=200, request_timeout_s=60)
                    c = SyncClient(edges[n], cfg, secret=secrets[n])
                    try:
                        return (await c.sync_once()).pushed
                    finally:
                        await c.stop()

            await asyncio.gather(*(once(n) for n in nodes))  # catalogue, members, numbers
            body = {"items": [{"product": "gua-sha", "quantity": 1}]}
            for shop in edges.values():
                for _ in range(orders):
                    shop.create_order(cloud.members["ben"], body)
            queued = sum(EdgeSync(s).queue_depth() for s in edges.values())
            gate = asyncio.Semaphore(len(nodes))  # everyone at once
            t0 = time.perf_counter()
            await asyncio.gather(*(once(n) for n in nodes))
            t = time.perf_counter() - t0
            print(f"chain {n_sites} sites x {per_site} nodes x {orders} orders: {queued} changes"
                  f" pushed by {len(nodes)} nodes at once in {t:.2f} s ({queued / t:.0f}"
                  f" changes/s, {workers} workers)")  # fmt: skip
            with db.read() as tx:
                n_orders = int(tx.scalar("SELECT COUNT(*) AS n FROM orders"))
                dup = int(tx.scalar("SELECT COUNT(*) - COUNT(DISTINCT number) AS d FROM orders"))
                low = tx.all("SELECT site, stock FROM site_stock WHERE stock <> ?",
                             (10_000 - per_site * orders,))  # fmt: skip
            check = Shop(db)
            check.site_book = sites.SiteBook()
            assert n_orders == len(nodes) * orders and dup == 0 and not low
            assert check.ledger_mismatches() == []
            print(f"  {n_orders} orders in the cloud, 0 duplicate numbers, every site's stock"
                  f" {10_000 - per_site * orders}, ledger exact")  # fmt: skip
            await compaction(sync, edges, nodes, once, picked_up)
        finally:
            proc.stop()
            for shop in edges.values():
                shop.db.close()
            db.close()
            shutil.rmtree(tmp)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--only", choices=["sqlite", "postgres", "chain"])
    a = p.parse_args()
    if a.only in (None, "sqlite"):
        asyncio.run(main())
    if a.only != "sqlite" and (why := postgres_unreachable()):
        raise SystemExit(f"PostgreSQL needed: {why}")
    if a.only in (None, "postgres"):
        asyncio.run(drain_postgres())
    if a.only in (None, "chain"):
        asyncio.run(chain())
