"""The compacted feed (sync/compact.py): fewer rows, and a node catching up from it ends
with exactly what it would from the full feed; rows a node has not pulled stay until it
has, unless older than the retention bound; a removed key is still a duplicate.

Two sites; records changed on two nodes of soho and in the cloud, so each order, member
and product has several feed rows from several origins.  Real SQLite edges sync with the
cloud app over HTTP, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cloud_api.app import build_app
from cloud_api.auth import Auth
from edge.shop import Shop, SqliteDatabase
from edge.shop.testing import make_shop, postgres_unreachable
from sync import sites
from sync.client import SyncClient
from sync.cloud import CloudSync
from sync.compact import compact
from sync.edge import EdgeSync
from tests.conftest import free_port
from tests.edge_site import wait_until
from tests.parts import missing
from tests.sync_helpers import edge_config, make_edge, off_loop, prepare_cloud, snapshot

NODES = {"soho-1": "soho", "soho-2": "soho", "soho-3": "soho", "soho-4": "soho",
         "paris-1": "paris"}  # fmt: skip


@pytest.fixture(params=["sqlite", "postgres"])
def chain(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if request.param == "postgres" and (why := postgres_unreachable()):
        missing("PostgreSQL", why)
    with make_shop(request.param, tmp_path) as shop:
        cloud = prepare_cloud(shop, ())
        sites.add_site(shop.db, "soho", "SoHo", "0.08", "America/New_York")
        sites.add_site(shop.db, "paris", "Paris", "0.20", "Europe/Paris")
        secrets = {n: cloud.auth.register_node(n, s) for n, s in NODES.items()}
        for site in ("soho", "paris"):
            shop.restock("serum", {"quantity": 50, "site": site})
        sync = CloudSync(shop)
        sync.enroll(cloud.members["ava"], "soho", "test")
        sync.enroll(cloud.members["ava"], "paris", "test")
        yield {"cloud": cloud, "sync": sync, "secrets": secrets, "tmp": tmp_path}


@pytest.fixture
async def http(chain: dict[str, Any]) -> AsyncIterator[TestClient[Any, Any]]:
    cloud = chain["cloud"]
    async with TestClient(TestServer(build_app(cloud.shop, cloud.auth, workers=4))) as c:
        yield c


class Edges:
    def __init__(self, chain: dict[str, Any], http: TestClient[Any, Any]) -> None:
        self.chain, self.http, self.shops = chain, http, dict[str, Shop]()

    async def open(self, name: str) -> Shop:
        self.shops[name] = await off_loop(lambda: make_edge(self.chain["tmp"] / f"{name}.db",
                                                            name))  # fmt: skip
        return self.shops[name]

    async def sync(self, name: str) -> None:
        url = str(self.http.make_url("/")).rstrip("/")
        c = SyncClient(self.shops[name], edge_config(url, name),
                       secret=self.chain["secrets"][name])  # fmt: skip
        try:
            await c.sync_once()
        finally:
            await c.stop()

    async def settle(self) -> None:
        """Every node pulls once more, so the cloud hears the cursor it reached."""
        for name in self.shops:
            await self.sync(name)

    def close(self) -> None:
        for shop in self.shops.values():
            shop.db.close()


def feed(shop: Shop, sql: str = "", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    with shop.db.read() as tx:
        return tx.all(
            "SELECT seq, entity, entity_id, origin, incarnation, site FROM sync_changes"
            f"{sql} ORDER BY seq",
            params,
        )


def state(shop: Shop) -> dict[str, Any]:
    """What a node ends with: records (merged fields too), catalogue, members, ledger."""
    snap = snapshot(shop)
    with shop.db.read() as tx:
        snap["merged"] = tx.all(
            "SELECT id, status, payment_ref, staff_notes, site FROM orders ORDER BY id"
        )
        snap["products"] = tx.all("SELECT id, name, price_cents FROM products ORDER BY id")
        snap["members"] = tx.all("SELECT id, name, phone, tier, active FROM members ORDER BY id")
    return snap


async def history(chain: dict[str, Any], edges: Edges) -> list[str]:
    """Orders taken at soho-1, moved on at soho-2 and in the cloud; members and products
    edited in the cloud: every record gets several feed rows from several origins."""
    cloud, sync = chain["cloud"], chain["sync"]
    one, two = await edges.open("soho-1"), await edges.open("soho-2")
    paris = await edges.open("paris-1")
    for name in ("soho-1", "soho-2", "paris-1"):
        await edges.sync(name)
    body = {"items": [{"product": "serum", "quantity": 1}]}
    orders = [await off_loop(lambda: one.create_order(cloud.members["ava"], body))
              for _ in range(3)]  # fmt: skip
    await off_loop(lambda: paris.create_order(cloud.members["ava"], body))
    await edges.sync("soho-1")
    await edges.sync("paris-1")
    await edges.sync("soho-2")
    moved = {"status": "processing", "staff_notes": "boxed"}
    for o in orders:
        await off_loop(lambda o=o: two.set_order_status(o.id, moved))
    await edges.sync("soho-2")
    await off_loop(lambda: cloud.shop.record_payment(orders[0].id, {"payment_ref": "pay-1"}))
    await edges.sync("soho-1")
    await off_loop(lambda: one.set_order_status(orders[1].id, {"status": "ready"}))
    await edges.sync("soho-1")
    await off_loop(lambda: two.cancel_order(orders[2].id, actor="desk"))
    # soho-2 has not heard of "ready": its payment row, the order's last, says processing.
    await off_loop(lambda: two.record_payment(orders[1].id, {"payment_ref": "pay-2"}))
    for i in range(3):
        await off_loop(lambda i=i: cloud.shop.update_product(
            "serum", {"name": f"Rose Serum v{i}", "price": f"4{i}.00"}))  # fmt: skip
        await off_loop(lambda i=i: cloud.shop.update_profile(
            cloud.members["ava"], {"name": "Ava", "phone": f"+1 555 000 000{i}"}))  # fmt: skip
    for name in ("soho-2", "soho-1", "soho-2", "paris-1"):
        await edges.sync(name)
    await off_loop(sync.ingest_outbox)
    return [o.id for o in orders]


async def test_a_fresh_node_catches_up_from_the_compacted_feed_to_the_same_state(
    chain: dict[str, Any], http: TestClient[Any, Any]
) -> None:
    cloud, sync = chain["cloud"], chain["sync"]
    edges = Edges(chain, http)
    try:
        await history(chain, edges)
        # The partition: soho's nodes hold none of paris's orders.
        paris_ids = {r["id"] for r in snapshot(edges.shops["paris-1"])["orders"]}
        soho_ids = {r["id"] for r in snapshot(edges.shops["soho-1"])["orders"]}
        assert paris_ids and soho_ids and not paris_ids & soho_ids
        # The full feed, caught up by a fresh node.
        await edges.open("soho-3")
        await edges.sync("soho-3")
        full = await off_loop(lambda: state(edges.shops["soho-3"]))
        await edges.settle()
        rows_before = await off_loop(lambda: feed(cloud.shop))
        done = await off_loop(lambda: compact(sync))
        assert done.removed > 0 and done.rewritten > 0, done
        assert done.rows_after == done.rows_before - done.removed
        after = await off_loop(lambda: feed(cloud.shop))
        assert len(after) < len(rows_before)
        # What is left of each record: its first and its last row (per site).
        kinds = {(r["entity"], r["entity_id"], r["site"]) for r in after
                 if r["entity"] in ("order", "member", "product")}  # fmt: skip
        for key in kinds:
            n = sum(1 for r in after if (r["entity"], r["entity_id"], r["site"]) == key)
            assert n <= 2, key
        # A fresh node catching up from the compacted feed ends the same.
        await edges.open("soho-4")
        await edges.sync("soho-4")
        compacted = await off_loop(lambda: state(edges.shops["soho-4"]))
        for key in full:
            assert compacted[key] == full[key], f"{key} differs"
        for name in ("soho-1", "soho-2"):
            await edges.sync(name)
            mine = await off_loop(lambda name=name: state(edges.shops[name]))
            for key in ("orders", "merged", "stock", "ledger", "products", "members"):
                assert mine[key] == full[key], f"{name}: {key} differs"
        # A second pass finds nothing more to remove.
        again = await off_loop(lambda: compact(sync))
        assert again.removed == 0
    finally:
        edges.close()


async def test_rows_a_node_has_not_pulled_stay_and_a_removed_key_stays_a_duplicate(
    chain: dict[str, Any], http: TestClient[Any, Any]
) -> None:
    cloud, sync = chain["cloud"], chain["sync"]
    edges = Edges(chain, http)
    try:
        orders = await history(chain, edges)
        one = edges.shops["soho-1"]
        # soho-2 goes quiet; soho-1 and the cloud move on.
        for status in ("ready", "completed"):
            step = {"status": status}
            await off_loop(lambda step=step: one.set_order_status(orders[0], step))
        await off_loop(lambda: one.set_order_status(orders[1], {"status": "completed"}))
        await edges.sync("soho-1")
        await off_loop(sync.ingest_outbox)
        with cloud.shop.db.read() as tx:
            cursor = int(tx.scalar("SELECT value FROM sync_state WHERE key = ?",
                                   ("node:soho-2:cursor",)))  # fmt: skip
        unseen = await off_loop(lambda: feed(cloud.shop, " WHERE seq > ? AND site = 'soho'",
                                             (cursor,)))  # fmt: skip
        assert len(unseen) >= 3
        await off_loop(lambda: compact(sync))
        kept = await off_loop(lambda: feed(cloud.shop, " WHERE seq > ? AND site = 'soho'",
                                           (cursor,)))  # fmt: skip
        assert [r["seq"] for r in kept] == [r["seq"] for r in unseen]
        # Past the retention bound they go too (all but each record's first and last row),
        # and soho-2 still ends where everyone else is.
        later = datetime.now(UTC) + timedelta(days=31)
        done = await off_loop(lambda: compact(sync, retention_days=30, now=later))
        assert done.removed > 0
        await edges.sync("soho-2")
        await edges.sync("soho-1")
        a = await off_loop(lambda: state(edges.shops["soho-1"]))
        b = await off_loop(lambda: state(edges.shops["soho-2"]))
        for key in ("orders", "merged", "stock", "ledger", "products", "members"):
            assert a[key] == b[key], f"{key} differs"
        assert {r["status"] for r in b["merged"]} == {"completed", "cancelled"}
        # soho-1 sends its whole outbox again: every key is a duplicate, removed or not.
        rows = len(await off_loop(lambda: feed(cloud.shop)))
        with one.db.write() as tx:
            tx.execute("UPDATE sync_state SET value = '0' WHERE key = 'push_cursor'")
        changes, _ = await off_loop(lambda: EdgeSync(one).pending(1000))
        acks = await off_loop(lambda: sync.push("soho-1", changes))
        assert acks and {a.status for a in acks} == {"duplicate"}
        assert len(await off_loop(lambda: feed(cloud.shop))) == rows
        assert (await off_loop(lambda: cloud.shop.ledger_mismatches())) == []
    finally:
        edges.close()


def test_feed_compact_command(tmp_path: Path) -> None:
    where = ["--data-dir", str(tmp_path / "cloud")]
    exe = Path(sys.executable).parent / "coresync-cloud"
    done = subprocess.run([str(exe), "feed", "compact", "--retention-days", "7", *where],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "feed compacted: 0 rows before, 0 after" in done.stdout


def test_compaction_runs_in_serve(tmp_path: Path) -> None:
    """``serve --compact-every``: the periodic pass runs in the cloud process (its log)."""
    exe = Path(sys.executable).parent / "coresync-cloud"
    port = free_port()
    proc = subprocess.Popen([str(exe), "serve", "--db", str(tmp_path / "cloud.db"), "--port",
                             str(port), "--compact-every", "0.2"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    watchdog = threading.Timer(60, proc.kill)  # a hung process fails the test, not the run
    watchdog.start()
    try:
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if "feed compacted" in line:
                break
        assert "feed compacted" in lines[-1], "".join(lines)
    finally:
        watchdog.cancel()
        proc.terminate()
        proc.wait(10)


async def test_a_compaction_pass_that_fails_is_logged_and_the_next_one_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Storage locked under the periodic pass (another writer holds cloud.db): the
    pass fails and says so in the log, the cloud keeps answering, and once the
    lock is gone the next pass compacts, with nobody restarting anything."""
    path = tmp_path / "cloud.db"
    db = SqliteDatabase(str(path), busy_timeout_ms=200)
    shop = Shop(db)
    shop.migrate()
    auth = Auth(db)
    auth.migrate()
    member = shop.create_member({"name": "Ava", "email": "ava@example.com", "phone": "+1 555 0100",
                                 "date_of_birth": "1990-01-01"})  # fmt: skip
    headers = {"Authorization": f"Bearer {auth.issue_member_token(member.id)}"}
    caplog.set_level(logging.INFO, logger="sync.compact")
    caplog.set_level(logging.INFO, logger="cloud_api.sync_routes")

    def count(text: str) -> int:
        return sum(text in r.getMessage() for r in caplog.records)

    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        async with TestClient(TestServer(build_app(shop, auth, compact_every_s=0.05))) as client:
            await wait_until(lambda: count("feed compacted") > 0)
            await off_loop(lambda: holder.execute("BEGIN EXCLUSIVE"))
            await wait_until(lambda: count("feed compaction failed") > 0)
            r = await client.get("/api/v1/shop/products", headers=headers)
            assert r.status == 200, "reads go on while the pass cannot write"
            await off_loop(lambda: holder.execute("ROLLBACK"))
            done = count("feed compacted")
            await wait_until(lambda: count("feed compacted") > done)
    finally:
        await off_loop(holder.close)
        await off_loop(db.close)
