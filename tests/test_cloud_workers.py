"""Two cloud workers on one PostgreSQL, three edge daemons at two sites, faults and SIGKILLs.

The cloud runs as ``coresync-cloud serve --workers 2`` (two processes on one
port, SO_REUSEPORT).  Every edge is a whole ``coresync-edge run`` daemon with
its built-in sync component, talking to the cloud through its own
fault-injecting proxy (its WAN link), which drops or cuts 20 % of
connections.  Orders are taken at the front desk through each daemon's LAN
API, as a staff account; only those the daemon acknowledged (201) count.

The kills land mid-sync on purpose.  A victim edge's link goes down while
orders queue up, comes back for one push, and the answer to that push is cut
after the cloud applied it; the edge can get no further (its retries are
refused) and is SIGKILLed in that state, then started again.  A cloud worker
is SIGKILLed inside a push transaction: the test holds the site's stock row
(SELECT ... FOR UPDATE), an edge's push of its backlog blocks on it, and the
worker whose PostgreSQL session waits is the one killed (its transaction is
never committed, the edge retries on the other worker).  The other worker is
SIGKILLed later while the restarted edges drain.  The supervisor starts each
again.  At the end: every
acknowledged order is in the cloud exactly once under the number the edge
gave it, no other order appeared, every number is unique, and the stock
ledger is exact per site in the cloud and at every edge.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from edge.shop import Shop, ShopConfig, SqliteDatabase
from edge.shop.testing import PG_DSN, postgres_schema, postgres_unreachable
from sync import sites
from sync.cloud import CloudSync
from sync.testing import CloudProcess, Fault, FaultProxy
from tests.conftest import Broker, free_port
from tests.daemon_process import wait_for
from tests.edge_daemons import Edge, make_edge
from tests.parts import missing
from tests.sync_helpers import Cloud, off_loop, prepare_cloud, scalar

EDGES = {"soho-1": "soho", "soho-2": "soho", "paris-1": "paris"}
ZONES = {"soho": "America/New_York", "paris": "Europe/Paris"}
STOCK = 10_000
BATCH = 2  # changes per push: a backlog takes several pushes to drain
BACKLOG = 5  # orders taken at an edge while its link is down
LATER = 2  # orders at every edge after the kills
WEB_ORDERS = (2, 2, 1)  # per site: before the kills, between the worker kills, at the end
# SIGKILLed with a push applied by the cloud and its acknowledgement lost.
VICTIMS = ("soho-1", "paris-1")


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


def _workers(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(c) for c in children]


def _listening(port: int) -> int:
    """How many sockets listen on ``port`` (one per worker that is ready)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for r in rows if r.split()[1].endswith(f":{port:04X}") and r.split()[3] == "0A")


async def _both_workers_ready(port: int) -> None:
    async def ready() -> bool:
        return await off_loop(lambda: _listening(port)) >= 2

    await wait_for(ready, 30, "both cloud workers to listen")


async def _kill_other_worker(proc: CloudProcess, original: list[int], killed: int) -> int:
    """SIGKILL the original worker not killed yet (not ``killed``'s replacement)."""
    assert proc.proc is not None
    workers = await off_loop(lambda: _workers(proc.proc.pid))  # type: ignore[union-attr]
    (victim,) = [w for w in workers if w in original and w != killed]
    os.kill(victim, signal.SIGKILL)
    return victim


async def _worker_replaced(proc: CloudProcess, victim: int) -> None:
    async def replaced() -> bool:
        now = await off_loop(lambda: _workers(proc.proc.pid))  # type: ignore[union-attr]
        return len(now) == 2 and victim not in now

    await wait_for(replaced, 30, f"worker {victim} to be started again")
    await _both_workers_ready(proc.port)


def _hold_site_stock(schema: str, site: str) -> Any:
    """An open transaction holding ``site``'s stock rows: a push that moves them waits."""
    conn = psycopg.connect(PG_DSN, options=f"-c search_path={schema}")
    conn.execute("SELECT stock FROM site_stock WHERE site = %s FOR UPDATE", (site,))
    return conn


def _worker_waiting(workers: list[int]) -> int | None:
    """The worker whose PostgreSQL session waits on a lock (from pg_stat_activity's
    client port to the worker owning that socket, through /proc)."""
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        ports = {r[0] for r in conn.execute(
            "SELECT client_port FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database()")}  # fmt: skip
    if not ports:
        return None
    rows = [r.split() for r in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    inodes = {r[9] for r in rows if int(r[1].split(":")[1], 16) in ports}
    for pid in workers:
        fds = Path(f"/proc/{pid}/fd")
        for fd in fds.iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd).removeprefix("socket:[").rstrip("]") in inodes:
                    return pid
    return None


async def _kill_worker_mid_push(proc: CloudProcess, hold: Any, uncommitted: Any) -> int:
    """SIGKILL the worker blocked in a push on the held rows, check with ``uncommitted``
    that nothing of the push was committed, then let go of the rows."""
    assert proc.proc is not None
    parent = proc.proc.pid
    victim: int | None = None

    async def blocked() -> bool:
        nonlocal victim
        victim = await off_loop(lambda: _worker_waiting(_workers(parent)))
        return victim is not None

    try:
        await wait_for(blocked, 30, "a push to wait on the held stock row")
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        assert await off_loop(uncommitted), "the push was committed before the kill"
    finally:
        await off_loop(hold.close)  # rolls back: the rows are free again
    return victim


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


def _pushed(cloud: Cloud, node: str) -> int:
    """Changes of ``node`` the cloud has applied (its feed rows)."""
    return int(scalar(cloud.shop, "SELECT COUNT(*) AS n FROM sync_changes WHERE origin = ?",
                      (node,)))  # fmt: skip


async def _pushes_seen(cloud: Cloud, node: str, more_than: int) -> int:
    seen = 0

    async def arrived() -> bool:
        nonlocal seen
        seen = await off_loop(lambda: _pushed(cloud, node))
        return seen > more_than

    await wait_for(arrived, 30, f"a push from {node}", lambda: seen)
    return seen


async def _kill_mid_drain(edge: Edge, proxy: FaultProxy, cloud: Cloud, member: str) -> int:
    """Link down, a backlog at the desk; the link returns, the first push is applied
    and its answer cut, every retry is refused: SIGKILL the daemon there.
    Returns how many of its changes the cloud held at the kill."""
    before = await off_loop(lambda: _pushed(cloud, edge.node))
    await proxy.set_offline(True)
    for _ in range(BACKLOG):
        await edge.order(member)
    proxy.fail_next(Fault("cut_response", after_bytes=1), *[Fault("refuse")] * 10_000)
    await proxy.set_offline(False)
    seen = await _pushes_seen(cloud, edge.node, before)
    await edge.kill()
    proxy.queued.clear()
    return seen - before


def _cloud_facts(shop: Shop) -> dict[str, Any]:
    with shop.db.read() as tx:
        orders = tx.all("SELECT id, number, site, origin_node FROM orders")
        stock = {r["site"]: int(r["stock"]) for r in tx.all(
            "SELECT s.site, s.stock FROM site_stock s JOIN products p ON p.id = s.product_id"
            " WHERE p.slug = 'gua-sha'")}  # fmt: skip
        sold = {r["site"]: int(r["q"]) for r in tx.all(
            "SELECT o.site, SUM(i.quantity) AS q FROM orders o JOIN order_items i"
            " ON i.order_id = o.id WHERE o.status <> 'cancelled' GROUP BY o.site")}  # fmt: skip
        owners = {r["node"] for r in tx.all("SELECT DISTINCT node FROM number_blocks")}
        # Exactly once in the feed too: one applied creation per order, nothing refused.
        twice = tx.all("SELECT entity_id FROM sync_changes WHERE entity = 'order' AND op = 'create'"
                       " GROUP BY entity_id HAVING COUNT(*) > 1")  # fmt: skip
        refused = tx.all("SELECT origin, entity_id, reason FROM sync_changes"
                         " WHERE status <> 'applied'")  # fmt: skip
    return {"orders": orders, "stock": stock, "sold": sold, "owners": owners,
            "twice": twice, "refused": refused}  # fmt: skip


def _edge_db_facts(edge: Edge) -> tuple[dict[str, str], int, list[str]]:
    """From the stopped daemon's shop.db: its orders, its stock, its ledger check."""
    shop = Shop(SqliteDatabase(str(edge.data / "shop.db")), ShopConfig(node_id=edge.node,
                number_authority=False, site=edge.site))  # fmt: skip
    try:
        with shop.db.read() as tx:
            orders = {r["id"]: r["number"] for r in tx.all("SELECT id, number FROM orders")}
            stock = int(tx.scalar("SELECT stock FROM products WHERE slug = 'gua-sha'"))
        return orders, stock, shop.ledger_mismatches()
    finally:
        shop.db.close()


@pytest.mark.slow
async def test_two_workers_three_edge_daemons_two_sites_survive_faults_and_kills(
    pg_chain: tuple[Cloud, CloudProcess, dict[str, str]], mqtt_broker: Broker, tmp_path: Path
) -> None:
    cloud, proc, secrets = pg_chain
    proxies: dict[str, FaultProxy] = {}
    for i, node in enumerate(EDGES):
        proxies[node] = FaultProxy("127.0.0.1", proc.port, seed=13 + i)
        await proxies[node].start()
        proxies[node].drop_rate = 0.2
    edges = {
        n: await off_loop(lambda n=n, s=s: make_edge(
            tmp_path, mqtt_broker, node=n, site=s, secret=secrets[n], timezone=ZONES[s],
            url=f"http://127.0.0.1:{proxies[n].port}", batch_size=BATCH))
        for n, s in EDGES.items()
    }  # fmt: skip
    member = {n: cloud.members["ben" if s == "soho" else "ava"] for n, s in EDGES.items()}
    token = await off_loop(lambda: cloud.auth.issue_member_token(cloud.members["ava"]))
    try:
        await _both_workers_ready(proc.port)
        await asyncio.gather(*(e.start() for e in edges.values()))
        await asyncio.gather(*(e.sign_in_staff() for e in edges.values()))
        await asyncio.gather(*(e.ready() for e in edges.values()))
        web = []
        for site in ("soho", "paris"):
            web += await _web_orders(proc.url, token, site, WEB_ORDERS[0])

        # Each victim daemon SIGKILLed with a push applied and unacknowledged.
        for node in VICTIMS:
            held = await _kill_mid_drain(edges[node], proxies[node], cloud, member[node])
            assert 0 < held < BACKLOG, f"{node}: the kill did not land mid-drain ({held})"

        # A cloud worker SIGKILLed inside soho-2's push of its backlog (soho's other
        # edge is down, so that push is the only one to wait on soho's stock rows).
        steady = edges["soho-2"]
        before = await off_loop(lambda: _pushed(cloud, steady.node))
        await proxies[steady.node].set_offline(True)
        for _ in range(BACKLOG):
            await steady.order(member[steady.node])
        assert proc.schema is not None and proc.proc is not None
        original = await off_loop(lambda: _workers(proc.proc.pid))  # type: ignore[union-attr]
        hold = await off_loop(lambda: _hold_site_stock(proc.schema, "soho"))  # type: ignore[arg-type]
        await proxies[steady.node].set_offline(False)
        first = await _kill_worker_mid_push(
            proc, hold, lambda: _pushed(cloud, steady.node) == before
        )
        # The victims start again and re-push what the cloud applied but never acknowledged.
        await asyncio.gather(*(edges[n].start() for n in VICTIMS))
        await _worker_replaced(proc, first)
        for site in ("soho", "paris"):
            web += await _web_orders(proc.url, token, site, WEB_ORDERS[1])

        # New orders at every edge; the other worker is SIGKILLed while they drain.
        for node, edge in edges.items():
            for _ in range(LATER):
                await edge.order(member[node])
        second = await _kill_other_worker(proc, original, first)
        await _worker_replaced(proc, second)
        for site in ("soho", "paris"):
            web += await _web_orders(proc.url, token, site, WEB_ORDERS[2])

        taken = {o["id"]: o["number"] for e in edges.values() for o in e.taken}
        expected = set(web) | set(taken)
        facts: dict[str, Any] = {}

        async def converged() -> bool:
            nonlocal facts
            facts = await off_loop(lambda: _cloud_facts(cloud.shop))
            if {o["id"] for o in facts["orders"]} != expected:
                return False
            for edge in edges.values():
                at_site = {o["id"]: o["number"] for o in facts["orders"] if o["site"] == edge.site}
                status = await edge.sync_status()
                if status["queue_depth"] != 0 or await edge.orders() != at_site:
                    return False
            return True

        def missing_in_cloud() -> list[str]:
            return sorted(expected - {o["id"] for o in facts.get("orders", [])})

        await wait_for(converged, 60, "every order everywhere", missing_in_cloud)
        for edge in edges.values():
            await edge.stop()
        total = len(EDGES) * LATER + (len(VICTIMS) + 1) * BACKLOG + 2 * sum(WEB_ORDERS)
        assert len(facts["orders"]) == len(expected) == total
        by_id = {o["id"]: o for o in facts["orders"]}
        for edge in edges.values():
            for o in edge.taken:  # acknowledged at the desk: in the cloud, under its number
                assert by_id[o["id"]]["number"] == o["number"], o
                assert by_id[o["id"]]["origin_node"] == edge.node, o
        assert facts["twice"] == [] and facts["refused"] == [], facts
        numbers = [o["number"] for o in facts["orders"]]
        assert len(set(numbers)) == len(numbers), "a number was issued twice"
        for site in ("soho", "paris"):
            assert facts["stock"][site] == STOCK - facts["sold"][site], site
        assert await off_loop(cloud.shop.ledger_mismatches) == []
        for edge in edges.values():
            orders, stock, mismatches = await off_loop(lambda e=edge: _edge_db_facts(e))
            assert orders == {o["id"]: o["number"] for o in facts["orders"]
                              if o["site"] == edge.site}, edge.node  # fmt: skip
            assert stock == facts["stock"][edge.site], edge.node
            assert mismatches == [], edge.node
        assert {"cloud-w0", "cloud-w1"} <= facts["owners"], "both workers took orders"
        assert all(p.faults > 0 for p in proxies.values()), "a proxy injected no fault"
    finally:
        for edge in edges.values():
            if edge.daemon is not None:
                await edge.kill()
        for p in proxies.values():
            await p.stop()
        # What every daemon run said, for a failure's post-mortem.
        (tmp_path / "daemons.log").write_text("\n".join(
            f"===== {e.node}, run {i + 1}\n{log}" for e in edges.values()
            for i, log in enumerate(e.logs)))  # fmt: skip


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
