"""Restores and reinstalls, end to end with real processes: a real ``coresync-cloud``,
the edge as a real ``coresync-edge run`` daemon syncing with its built-in sync
component, orders taken at the desk through its LAN API (201 = taken), and
``coresync-edge backup`` (online, while the daemon runs) / ``restore``.

Before incarnations, a restored or wiped edge re-used outbox seqs the cloud had
acknowledged (its new orders were dropped as duplicates) and re-used numbers.
Every scenario here ends with 0 acknowledged orders lost and 0 numbers used twice.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.shop import Shop, ShopConfig, SqliteDatabase
from sync import sites
from sync.attention import list_attention
from sync.cloud import CloudSync
from sync.testing import CloudProcess, FaultProxy
from tests.conftest import REPO, Broker
from tests.daemon_process import wait_for
from tests.edge_daemons import Edge, make_edge
from tests.sync_helpers import Cloud, off_loop, running_cloud

BIN = Path(sys.executable).parent
NODE, SITE = "edge-1", "spa"


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[tuple[Cloud, CloudProcess]]:
    """A SQLite cloud with one site, its node and both members enrolled there."""
    with running_cloud(tmp_path / "cloud.db", nodes=()) as (c, proc):
        sites.add_site(c.shop.db, SITE, "Spa", "0.08", "UTC")
        c.shop.restock("gua-sha", {"quantity": 1000, "site": SITE})
        for who in c.members.values():
            CloudSync(c.shop).enroll(who, SITE, "test")
        c.secrets[NODE] = c.auth.register_node(NODE, SITE)
        yield c, proc


@pytest.fixture
async def edge(
    cloud: tuple[Cloud, CloudProcess], mqtt_broker: Broker, tmp_path: Path
) -> AsyncIterator[Edge]:
    """The spa's daemon, started, with a staff account signed in and synced once."""
    c, proc = cloud
    e = await _spa(c, mqtt_broker, tmp_path, proc.url)
    try:
        await _first_start(e)
        yield e
    finally:
        if e.daemon is not None:
            await e.daemon.kill()


async def _spa(c: Cloud, broker: Broker, tmp: Path, url: str) -> Edge:
    """The spa's daemon (not started) syncing with the cloud at ``url``, 3 changes a push."""
    secret = c.secrets[NODE]
    return await off_loop(
        lambda: make_edge(tmp, broker, node=NODE, site=SITE, secret=secret, url=url, batch_size=3)
    )


async def _first_start(e: Edge) -> None:
    await e.start()
    await e.sign_in_staff()
    await e.ready()


def _run(argv: list[str]) -> str:
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{argv[:3]} failed: {done.stdout}\n{done.stderr}"
    return done.stdout


def _key(dest: Path) -> Path:
    """The backup key (backups are encrypted): a file of our own for the test."""
    key = dest.parent / "backup-key"
    if not key.exists():
        key.write_text("test-backup-key-0123456789abcdef\n")
        key.chmod(0o600)
    return key


async def _backup(data: Path, dest: Path) -> Path:
    """``coresync-edge backup`` while the daemon runs (an online backup)."""

    def backup() -> Path:
        _run([str(BIN / "coresync-edge"), "backup", "--data-dir", str(data), "--dest", str(dest),
              "--backup-key", str(_key(dest)), "-q"])  # fmt: skip
        (made,) = [p for p in dest.iterdir() if p.name.startswith("coresync-edge-")]
        return made

    return await off_loop(backup)


async def _restore(backup: Path, data: Path) -> None:
    argv = [str(BIN / "coresync-edge"), "restore", str(backup), "--data-dir", str(data),
            "--backup-key", str(_key(backup.parent))]  # fmt: skip
    await off_loop(lambda: _run(argv))


async def _take(e: Edge, c: Cloud, n: int, who: str = "ben") -> list[str]:
    """``n`` counter orders at the desk, each acknowledged (201): their numbers."""
    return [(await e.order(c.members[who], quantity=1))["number"] for _ in range(n)]


def _fed(c: Cloud) -> int:
    """How many changes of this node the cloud holds."""
    with c.shop.db.read() as tx:
        return int(tx.scalar("SELECT COUNT(*) AS n FROM sync_changes WHERE origin = ?", (NODE,)))


def _cloud_orders(c: Cloud) -> dict[str, str]:
    """The cloud's orders of this node: number -> id."""
    with c.shop.db.read() as tx:
        rows = tx.all("SELECT id, number FROM orders WHERE origin_node = ?", (NODE,))
    return {r["number"]: r["id"] for r in rows}


async def _synced(e: Edge, c: Cloud, numbers: list[str]) -> None:
    """Wait until the cloud holds exactly ``numbers`` of this node and the edge's queue is empty."""
    held: dict[str, str] = {}

    async def done() -> bool:
        nonlocal held
        held = await off_loop(lambda: _cloud_orders(c))
        return set(held) == set(numbers) and (await e.sync_status())["queue_depth"] == 0

    await wait_for(done, 60, f"the cloud to hold {sorted(numbers)}", lambda: sorted(held))


async def _holds(e: Edge, numbers: list[str]) -> None:
    """Wait until the edge holds (at least) these orders: re-pulled after a recovery."""
    have: set[str] = set()

    async def back() -> bool:
        nonlocal have
        have = set((await e.orders()).values())
        return set(numbers) <= have

    await wait_for(back, 60, f"the edge to hold {sorted(numbers)}", lambda: sorted(have))


async def _check(e: Edge, c: Cloud, taken: list[str]) -> None:
    """Every order taken (and acknowledged) is in the cloud once under its number, and
    back at the edge; numbers unique; stock and ledger agree on both sides."""
    assert len(set(taken)) == len(taken), f"numbers used twice: {sorted(taken)}"
    await _synced(e, c, taken)
    in_cloud = await off_loop(lambda: _cloud_orders(c))
    at_edge = {number: oid for oid, number in (await e.orders()).items()}
    assert at_edge == in_cloud
    for o in e.taken:  # as the desk acknowledged it: the same order under the same number
        if o["number"] in taken:
            assert in_cloud[o["number"]] == o["id"], o
    await e.stop()
    edge_stock, edge_ledger = await off_loop(lambda: _edge_ledger(e))
    cloud_stock = await off_loop(lambda: _site_stock(c))
    assert edge_stock == cloud_stock == 1000 - len(taken)
    assert edge_ledger == [] and await off_loop(c.shop.ledger_mismatches) == []


def _edge_ledger(e: Edge) -> tuple[int, list[str]]:
    shop = Shop(SqliteDatabase(str(e.data / "shop.db")),
                ShopConfig(node_id=NODE, number_authority=False, site=SITE))  # fmt: skip
    try:
        with shop.db.read() as tx:
            stock = int(tx.scalar("SELECT stock FROM products WHERE slug = 'gua-sha'"))
        return stock, shop.ledger_mismatches()
    finally:
        shop.db.close()


def _site_stock(c: Cloud) -> int:
    with c.shop.db.read() as tx:
        return int(tx.scalar(
            "SELECT s.stock FROM site_stock s JOIN products p ON p.id = s.product_id"
            " WHERE p.slug = 'gua-sha' AND s.site = ?", (SITE,)))  # fmt: skip


def _attention(db: Any, kind: str) -> list[dict[str, Any]]:
    return [a.data for a in list_attention(db) if a.kind == kind]


@pytest.mark.parametrize("how", ["restore_command", "copied_by_hand"])
async def test_restore_loses_nothing_acknowledged_and_reuses_no_number(
    cloud: tuple[Cloud, CloudProcess], edge: Edge, tmp_path: Path, how: str
) -> None:
    c, _ = cloud
    before = await _take(edge, c, 3)
    await _synced(edge, c, before)
    backup = await _backup(edge.data, tmp_path / "backups")
    at_backup = await off_loop(lambda: _fed(c))
    snapshot = tmp_path / "snapshot"  # the whole data dir, as a VM snapshot would keep it
    if how == "copied_by_hand":
        await edge.stop()
        await off_loop(lambda: shutil.copytree(edge.data, snapshot))
        await edge.start()
    after_backup = await _take(edge, c, 4)  # acknowledged by the cloud, then the disk is lost
    await _synced(edge, c, before + after_backup)
    lacked = await off_loop(lambda: _fed(c)) - at_backup  # the changes the old disk takes along
    await edge.stop()
    if how == "restore_command":
        await _restore(backup, edge.data)
    else:  # a rollback the edge is not told about: only the cloud can notice
        await off_loop(lambda: shutil.rmtree(edge.data))
        await off_loop(lambda: shutil.copytree(snapshot, edge.data))
    await edge.start()  # the staff session is on the restored disk too
    await edge.ready()  # no order is numbered before the cloud was asked (docs/sync.md)
    await _holds(edge, before + after_backup)  # re-pulled: the restored disk lacked four
    new = await _take(edge, c, 3)
    assert not set(new) & set(before + after_backup), "a number was handed out twice"
    recovered = _attention_of(await edge.sync_status(), "node_recovered")
    reason = "restored" if how == "restore_command" else "rolled_back"
    assert recovered and recovered[0]["reason"] == reason, recovered
    assert recovered[0]["recovered"] == lacked, recovered
    await _check(edge, c, before + after_backup + new)
    restarted = await off_loop(lambda: _attention(c.shop.db, "node_restarted"))
    assert [a["reason"] for a in restarted] == [reason]


def _attention_of(status: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """Attention items of ``kind`` as the edge's staff see them (GET /api/v1/sync/status)."""
    return [a["data"] for a in status["attention"] if a["kind"] == kind]


async def test_wiped_data_dir_under_the_same_node_id(
    cloud: tuple[Cloud, CloudProcess], edge: Edge
) -> None:
    c, _ = cloud
    first = await _take(edge, c, 3, "ava")
    await _synced(edge, c, first)
    await edge.stop()
    await off_loop(lambda: shutil.rmtree(edge.data))  # a reinstall: same node id and secret
    await _first_start(edge)  # a new disk: a new admin password, a new staff account
    await _holds(edge, first)  # the reinstalled edge has its own history back
    again = await _take(edge, c, 3, "ava")
    await _check(edge, c, first + again)
    restarted = await off_loop(lambda: _attention(c.shop.db, "node_restarted"))
    assert [a["reason"] for a in restarted] == ["reinstalled"]


async def test_restore_of_a_disk_that_never_synced_after_backup_keeps_its_numbers_apart(
    cloud: tuple[Cloud, CloudProcess], mqtt_broker: Broker, tmp_path: Path
) -> None:
    """Orders taken offline after the backup are gone with the disk (docs/sync.md), but
    their numbers may be on receipts: the restored edge retires its blocks."""
    c, proc = cloud
    link = FaultProxy("127.0.0.1", proc.port)  # the spa's WAN link, cut below
    await link.start()
    e = await _spa(c, mqtt_broker, tmp_path, f"http://127.0.0.1:{link.port}")
    try:
        await _first_start(e)
        backup = await _backup(e.data, tmp_path / "backups")
        await link.set_offline(True)
        lost = await _take(e, c, 2)  # acknowledged at the desk, never reach the cloud
        await e.stop()
        await _restore(backup, e.data)
        await e.start()  # still offline: its blocks are retired, no new one leased yet
        one = {"member_id": c.members["ben"], "items": [{"product": "gua-sha", "quantity": 1}]}
        status, refused = await e.call("POST", "/api/v1/shop/orders", one)
        assert status == 409 and refused["error"]["code"] == "numbers_exhausted", refused
        await link.set_offline(False)
        await e.ready()
        new = await _take(e, c, 2)
        assert not set(new) & set(lost), f"lost receipts {lost} share numbers with {new}"
        await _check(e, c, new)
    finally:
        if e.daemon is not None:
            await e.daemon.kill()
        await link.stop()


def _recovery_state(data: Path) -> dict[str, str]:
    """The recovery keys of a stopped daemon's sync state."""
    db = SqliteDatabase(str(data / "shop.db"))
    try:
        with db.read() as tx:
            rows = tx.all("SELECT key, value FROM sync_state WHERE key LIKE 'recover%'")
        return {r["key"]: r["value"] for r in rows}
    finally:
        db.close()


async def test_a_daemon_killed_mid_recovery_resumes_it(
    cloud: tuple[Cloud, CloudProcess], mqtt_broker: Broker, tmp_path: Path
) -> None:
    """SIGKILL after the first page of ``sync/recover`` was applied and before the second
    was asked for: the next start carries on from the recover cursor it kept."""
    c, proc = cloud
    link = FaultProxy("127.0.0.1", proc.port)
    await link.start()
    e = await _spa(c, mqtt_broker, tmp_path, f"http://127.0.0.1:{link.port}")
    try:
        await _first_start(e)
        before = await _take(e, c, 3)
        await _synced(e, c, before)
        backup = await _backup(e.data, tmp_path / "backups")
        at_backup = await off_loop(lambda: _fed(c))
        after_backup = await _take(e, c, 4)  # several pages of recovery at 3 a page
        await _synced(e, c, before + after_backup)
        lacked = await off_loop(lambda: _fed(c)) - at_backup
        await e.stop()
        await _restore(backup, e.data)
        link.offline_at = (b"/api/v1/sync/recover", 2)  # the link drops before page two
        await e.start()
        await asyncio.wait_for(link.went_offline.wait(), 60)
        await e.kill()
        state = await off_loop(lambda: _recovery_state(e.data))
        assert state.get("recovery") == "restored" and int(state["recover_cursor"]) > 0, state
        link.offline_at = None
        await link.set_offline(False)
        await e.start()
        await e.ready()
        await _holds(e, before + after_backup)
        new = await _take(e, c, 2)
        assert not set(new) & set(before + after_backup), "a number was handed out twice"
        recovered = _attention_of(await e.sync_status(), "node_recovered")
        assert [a["recovered"] for a in recovered] == [lacked], recovered
        await _check(e, c, before + after_backup + new)
    finally:
        if e.daemon is not None:
            await e.daemon.kill()
        await link.stop()
