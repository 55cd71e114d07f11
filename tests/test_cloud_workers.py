"""Two cloud workers on one PostgreSQL, three edges at two sites, faults and SIGKILLs.

The cloud runs as ``coresync-cloud serve --workers 2`` (two processes on one
port, SO_REUSEPORT).  Every edge's sync job (``python -m sync --loop``) talks
to it through the fault-injecting proxy, which drops or cuts 20 % of
connections.  Meanwhile each edge's sync job is SIGKILLed mid-drain and
restarted, and one cloud worker is SIGKILLed (its supervisor starts it
again).  At the end: no order lost or duplicated, every number unique, and
the stock ledger exact per site, in the cloud and at every edge.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge.shop import Shop, ShopConfig, SqliteDatabase
from edge.shop.testing import PG_DSN, postgres_schema, postgres_unreachable
from sync import sites
from sync.cloud import CloudSync
from sync.edge import EdgeSync
from sync.testing import CloudProcess, FaultProxy
from tests.conftest import REPO, free_port
from tests.parts import missing
from tests.sync_helpers import Cloud, off_loop, prepare_cloud

EDGES = {"soho-1": "soho", "soho-2": "soho", "paris-1": "paris"}
STOCK = 10_000
COUNTER_ORDERS = 30  # per edge
WEB_ORDERS = 10  # per site, half before and half after a worker is killed


@pytest.fixture
def pg_chain() -> Iterator[tuple[Cloud, CloudProcess, dict[str, str]]]:
    if why := postgres_unreachable():
        missing("PostgreSQL", why)
    from edge.shop import PostgresDatabase

    with postgres_schema() as schema:
        db = PostgresDatabase(PG_DSN, schema=schema, pool_size=4)
        try:
            cloud = prepare_cloud(Shop(db), ())
            for site, zone in (("soho", "America/New_York"), ("paris", "Europe/Paris")):
                sites.add_site(db, site, site.title(), "0.08", zone)
                cloud.shop.restock("gua-sha", {"quantity": STOCK, "site": site})
                for who in ("ava", "ben"):
                    CloudSync(cloud.shop).enroll(cloud.members[who], site, "test")
            secrets = {n: cloud.auth.register_node(n, s) for n, s in EDGES.items()}
            proc = CloudProcess(PG_DSN, free_port(), schema=schema, workers=2)
            proc.start()
            try:
                yield cloud, proc, secrets
            finally:
                proc.stop()
        finally:
            db.close()


@pytest.fixture
async def proxy(pg_chain: tuple[Cloud, CloudProcess, dict[str, str]]) -> AsyncIterator[FaultProxy]:
    p = FaultProxy("127.0.0.1", pg_chain[1].port, seed=13)
    await p.start()
    p.drop_rate = 0.2
    yield p
    await p.stop()


def _edge(path: Path, node: str) -> Shop:
    shop = Shop(SqliteDatabase(str(path)), ShopConfig(node_id=node, number_authority=False,
                                                      site=EDGES[node]))  # fmt: skip
    shop.migrate()
    return shop


def _sync_job(db: Path, url: str, node: str, secret: str, *, loop: bool) -> Any:
    env = {**os.environ, "CORESYNC_NODE_SECRET": secret, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "sync", "--db", str(db), "--url", url, "--node", node,
            "--batch-size", "10", *(["--loop"] if loop else [])]  # fmt: skip
    return subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip


def _workers(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(c) for c in children]


def _listening(port: int) -> int:
    """How many sockets listen on ``port`` (one per worker that is ready)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for r in rows if r.split()[1].endswith(f":{port:04X}") and r.split()[3] == "0A")


async def _both_workers_ready(port: int) -> None:
    async def ready() -> None:
        while True:  # the kernel's socket table is the event: no callback exists for it
            if await off_loop(lambda: _listening(port)) >= 2:
                return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(ready(), 30)


def _counter_orders(shop: Shop, member: str) -> list[str]:
    body = {"items": [{"product": "gua-sha", "quantity": 2}]}
    return [shop.create_order(member, body).id for _ in range(COUNTER_ORDERS)]


async def _web_orders(url: str, token: str, site: str, n: int) -> list[str]:
    """Each on a fresh connection, so the kernel spreads them over the workers."""
    placed = []
    body = {"items": [{"product": "gua-sha", "quantity": 1}], "site": site}
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(n):
        fresh = aiohttp.TCPConnector(force_close=True)
        async with (
            aiohttp.ClientSession(connector=fresh) as s,
            s.post(f"{url}/api/v1/shop/orders", json=body, headers=headers) as r,
        ):
            assert r.status == 201, await r.text()
            placed.append((await r.json())["id"])
    return placed


def _cloud_facts(shop: Shop) -> dict[str, Any]:
    with shop.db.read() as tx:
        orders = tx.all("SELECT id, number, site FROM orders")
        stock = {r["site"]: int(r["stock"]) for r in tx.all(
            "SELECT s.site, s.stock FROM site_stock s JOIN products p ON p.id = s.product_id"
            " WHERE p.slug = 'gua-sha'")}  # fmt: skip
        sold = {r["site"]: int(r["q"]) for r in tx.all(
            "SELECT o.site, SUM(i.quantity) AS q FROM orders o JOIN order_items i"
            " ON i.order_id = o.id WHERE o.status <> 'cancelled' GROUP BY o.site")}  # fmt: skip
        owners = {r["node"] for r in tx.all("SELECT DISTINCT node FROM number_blocks")}
    return {"orders": orders, "stock": stock, "sold": sold, "owners": owners}


def _edge_facts(shop: Shop) -> tuple[set[str], int, int, list[str]]:
    with shop.db.read() as tx:
        ids = {r["id"] for r in tx.all("SELECT id FROM orders")}
        stock = int(tx.scalar("SELECT stock FROM products WHERE slug = 'gua-sha'"))
    return ids, stock, EdgeSync(shop).status()["queue_depth"], shop.ledger_mismatches()


@pytest.mark.slow
async def test_two_workers_three_edges_two_sites_survive_faults_and_kills(
    pg_chain: tuple[Cloud, CloudProcess, dict[str, str]], proxy: FaultProxy, tmp_path: Path
) -> None:
    cloud, proc, secrets = pg_chain
    url = f"http://127.0.0.1:{proxy.port}"
    edges = {n: await off_loop(lambda n=n: _edge(tmp_path / f"{n}.db", n)) for n in EDGES}
    token = await off_loop(lambda: cloud.auth.issue_member_token(cloud.members["ava"]))
    jobs: dict[str, Any] = {}
    try:
        await _both_workers_ready(proc.port)
        web = []
        for site in ("soho", "paris"):
            web += await _web_orders(proc.url, token, site, WEB_ORDERS // 2)
        counter: dict[str, list[str]] = {}
        for n, shop in edges.items():
            first = _sync_job(tmp_path / f"{n}.db", proc.url, n, secrets[n], loop=False)
            assert await off_loop(lambda first=first: first.wait(60)) == 0
            member = cloud.members["ben" if n.startswith("soho") else "ava"]
            counter[n] = await off_loop(lambda shop=shop, m=member: _counter_orders(shop, m))
            jobs[n] = _sync_job(tmp_path / f"{n}.db", url, n, secrets[n], loop=True)
        # Kill every edge's sync job once mid-drain, and one cloud worker.
        victim = (await off_loop(lambda: _workers(proc.proc.pid)))[0]  # type: ignore[union-attr]
        os.kill(victim, signal.SIGKILL)
        for n in EDGES:
            jobs[n].send_signal(signal.SIGKILL)
            await off_loop(jobs[n].wait)
            jobs[n] = _sync_job(tmp_path / f"{n}.db", url, n, secrets[n], loop=True)

        async def restarted() -> None:
            while True:
                now = await off_loop(lambda: _workers(proc.proc.pid))  # type: ignore[union-attr]
                if len(now) == 2 and victim not in now:
                    return
                await asyncio.sleep(0.1)

        await asyncio.wait_for(restarted(), 30)
        await _both_workers_ready(proc.port)
        for site in ("soho", "paris"):
            web += await _web_orders(proc.url, token, site, WEB_ORDERS // 2)
        expected = set(web) | {o for ids in counter.values() for o in ids}

        async def converged() -> dict[str, Any]:
            while True:
                facts = await off_loop(lambda: _cloud_facts(cloud.shop))
                at_edges = {n: await off_loop(lambda s=s: _edge_facts(s)) for n, s in edges.items()}
                site_orders = {s: {o["id"] for o in facts["orders"] if o["site"] == s}
                               for s in ("soho", "paris")}  # fmt: skip
                if {o["id"] for o in facts["orders"]} == expected and all(
                    f[0] == site_orders[EDGES[n]] and f[2] == 0 and
                    f[1] == facts["stock"][EDGES[n]] for n, f in at_edges.items()
                ):  # fmt: skip
                    return {"cloud": facts, "edges": at_edges}
                await asyncio.sleep(0.2)

        final = await asyncio.wait_for(converged(), 60)
        facts = final["cloud"]
        assert len(facts["orders"]) == len(expected) == 3 * COUNTER_ORDERS + 2 * WEB_ORDERS
        numbers = [o["number"] for o in facts["orders"]]
        assert len(set(numbers)) == len(numbers), "a number was issued twice"
        for site in ("soho", "paris"):
            assert facts["stock"][site] == STOCK - facts["sold"][site], site
        assert await off_loop(cloud.shop.ledger_mismatches) == []
        assert all(f[3] == [] for f in final["edges"].values())
        assert {"cloud-w0", "cloud-w1"} <= facts["owners"], "both workers took orders"
        assert proxy.faults > 0, "the proxy injected no fault"
    finally:
        for job in jobs.values():
            if job.poll() is None:
                job.terminate()
            await off_loop(job.wait)
        for shop in edges.values():
            await off_loop(shop.db.close)


def test_workers_do_not_outlive_a_killed_supervisor(
    pg_chain: tuple[Cloud, CloudProcess, dict[str, str]],
) -> None:
    """SIGKILL to the parent: its workers get SIGTERM from the kernel and leave the port."""
    _, proc, _ = pg_chain
    assert proc.proc is not None
    parent = proc.proc.pid
    deadline = time.monotonic() + 30
    while len(_workers(parent)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = _workers(parent)
    assert len(workers) == 2
    os.kill(parent, signal.SIGKILL)
    proc.proc.wait()
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.05)
    assert not any(_alive(w) for w in workers), "a worker outlived its supervisor"
    assert _listening(proc.port) == 0


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
