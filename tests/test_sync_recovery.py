"""Restores and reinstalls, end to end with real processes: a real ``coresync-cloud``,
the sync client as ``python -m sync``, and ``coresync-edge backup`` / ``restore``.

Before incarnations, a restored or wiped edge re-used outbox seqs the cloud had
acknowledged (its new orders were dropped as duplicates) and re-used numbers.
Every scenario here ends with 0 orders lost and 0 numbers used twice.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.shop import Shop
from sync.attention import list_attention
from sync.edge import EdgeSync
from sync.testing import CloudProcess
from tests.conftest import REPO
from tests.sync_helpers import Cloud, assert_converged, make_edge, running_cloud

BIN = Path(sys.executable).parent


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[tuple[Cloud, CloudProcess]]:
    with running_cloud(tmp_path / "cloud.db", restock={"gua-sha": 1000}) as running:
        yield running


def _run(argv: list[str], env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{argv[:3]} failed: {done.stdout}\n{done.stderr}"
    return done.stdout


def _sync(data: Path, c: Cloud, proc: CloudProcess) -> None:
    env = {**os.environ, "CORESYNC_NODE_SECRET": c.secrets["edge-1"], "PYTHONPATH": str(REPO)}
    _run([sys.executable, "-m", "sync", "--db", str(data / "shop.db"), "--url", proc.url,
          "--node", "edge-1", "--batch-size", "3"], env)  # fmt: skip


def _key(dest: Path) -> Path:
    """The backup key (backups are encrypted): a file of our own for the test."""
    key = dest.parent / "backup-key"
    if not key.exists():
        key.write_text("test-backup-key-0123456789abcdef\n")
        key.chmod(0o600)
    return key


def _backup(data: Path, dest: Path) -> Path:
    _run([str(BIN / "coresync-edge"), "backup", "--data-dir", str(data), "--dest", str(dest),
          "--backup-key", str(_key(dest)), "-q"])  # fmt: skip
    (made,) = [p for p in dest.iterdir() if p.name.startswith("coresync-edge-")]
    return made


def _restore(backup: Path, data: Path) -> None:
    _run([str(BIN / "coresync-edge"), "restore", str(backup), "--data-dir", str(data),
          "--backup-key", str(_key(backup.parent))])  # fmt: skip


def _orders(data: Path, member: str, n: int) -> list[str]:
    shop = make_edge(data / "shop.db")
    try:
        items = {"items": [{"product": "gua-sha", "quantity": 1}]}
        return [shop.create_order(member, items).number for _ in range(n)]
    finally:
        shop.db.close()


def _edge_orders_in_cloud(c: Cloud) -> list[str]:
    with c.shop.db.read() as tx:
        rows = tx.all("SELECT number FROM orders WHERE origin_node = 'edge-1' ORDER BY number")
    return [r["number"] for r in rows]


def _check(data: Path, c: Cloud, taken: list[str]) -> Shop:
    """Every order taken (and acknowledged) is in the cloud once, numbers unique."""
    in_cloud = _edge_orders_in_cloud(c)
    assert sorted(taken) == in_cloud, f"cloud holds {in_cloud}, edge took {sorted(taken)}"
    assert len(set(taken)) == len(taken), f"numbers used twice: {sorted(taken)}"
    edge = make_edge(data / "shop.db")
    assert EdgeSync(edge).status()["queue_depth"] == 0
    assert_converged(edge, c.shop)
    return edge


@pytest.mark.parametrize("how", ["restore_command", "copied_by_hand"])
def test_restore_loses_nothing_acknowledged_and_reuses_no_number(
    cloud: tuple[Cloud, CloudProcess], tmp_path: Path, how: str
) -> None:
    c, proc = cloud
    data, dest = tmp_path / "data", tmp_path / "backups"
    ben = c.members["ben"]
    data.mkdir()
    make_edge(data / "shop.db").db.close()
    _sync(data, c, proc)
    before = _orders(data, ben, 3)
    _sync(data, c, proc)
    backup = _backup(data, dest)
    snapshot = tmp_path / "snapshot-shop.db"  # a plain copy, as a VM snapshot would keep
    shutil.copyfile(data / "shop.db", snapshot)
    after_backup = _orders(data, ben, 4)  # acknowledged by the cloud, then the disk is lost
    _sync(data, c, proc)
    assert len(_edge_orders_in_cloud(c)) == 7
    if how == "restore_command":
        _restore(backup, data)
    else:  # a rollback the edge is not told about: only the cloud can notice
        for suffix in ("", "-wal", "-shm"):
            Path(f"{data / 'shop.db'}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(snapshot, data / "shop.db")
    _sync(data, c, proc)  # re-pulls the four orders the restored disk lacks
    new = _orders(data, ben, 3)
    _sync(data, c, proc)
    assert not set(new) & set(before + after_backup), "a number was handed out twice"
    edge = _check(data, c, before + after_backup + new)
    try:
        assert {o.number for o in edge.list_orders(page_size=100).items} == set(
            before + after_backup + new
        )
        edge_items = [a for a in list_attention(edge.db) if a.kind == "node_recovered"]
        assert edge_items and edge_items[0].data["recovered"] >= 4, edge_items
        reason = "restored" if how == "restore_command" else "rolled_back"
        assert edge_items[0].data["reason"] == reason
        cloud_items = [a for a in list_attention(c.shop.db) if a.kind == "node_restarted"]
        assert [a.data["reason"] for a in cloud_items] == [reason]
    finally:
        edge.db.close()


def test_wiped_data_dir_under_the_same_node_id(
    cloud: tuple[Cloud, CloudProcess], tmp_path: Path
) -> None:
    c, proc = cloud
    data = tmp_path / "data"
    data.mkdir()
    make_edge(data / "shop.db").db.close()
    _sync(data, c, proc)
    first = _orders(data, c.members["ava"], 3)
    _sync(data, c, proc)
    shutil.rmtree(data)  # a reinstall: same node id and secret, empty disk
    data.mkdir()
    make_edge(data / "shop.db").db.close()
    _sync(data, c, proc)
    again = _orders(data, c.members["ava"], 3)
    _sync(data, c, proc)
    edge = _check(data, c, first + again)
    try:
        assert edge.list_orders().total == 6, "the reinstalled edge lacks its own history"
        cloud_items = [a for a in list_attention(c.shop.db) if a.kind == "node_restarted"]
        assert [a.data["reason"] for a in cloud_items] == ["reinstalled"]
    finally:
        edge.db.close()


def test_restore_of_a_disk_that_never_synced_after_backup_keeps_its_numbers_apart(
    cloud: tuple[Cloud, CloudProcess], tmp_path: Path
) -> None:
    """Orders taken offline after the backup are gone with the disk (docs/sync.md), but
    their numbers may be on receipts: the restored edge retires its blocks."""
    c, proc = cloud
    data, dest = tmp_path / "data", tmp_path / "backups"
    data.mkdir()
    make_edge(data / "shop.db").db.close()
    _sync(data, c, proc)
    backup = _backup(data, dest)
    lost = _orders(data, c.members["ben"], 2)  # never reach the cloud
    _restore(backup, data)
    _sync(data, c, proc)
    new = _orders(data, c.members["ben"], 2)
    _sync(data, c, proc)
    assert not set(new) & set(lost), f"lost receipts {lost} share numbers with {new}"
    _check(data, c, new).db.close()
