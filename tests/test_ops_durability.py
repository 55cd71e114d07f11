"""Durability rule: FULL where data is critical, crash safety under SIGKILL,
and a full disk that fails writes cleanly and recovers."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.ops.durability import (
    apply_policy,
    durable_write,
    get_synchronous,
    policy_for,
    set_synchronous,
)
from edge.shop import Shop, ShopConfig
from edge.shop.db import SqliteDatabase
from edge.shop.errors import StorageFailure
from edge.store import connect
from tests.parts import missing

LOAD = Path(__file__).with_name("ops_write_load.py")


def test_policy_names_each_file() -> None:
    assert policy_for("/var/lib/coresync-edge/shop.db") == "FULL"
    assert policy_for("templates.db") == "FULL"
    assert policy_for("edge.db") == "NORMAL"
    assert policy_for("something-new.db") == "FULL"  # unknown data is treated as critical


def test_shop_database_is_full_by_default(tmp_path: Path) -> None:
    db = SqliteDatabase(str(tmp_path / "shop.db"))
    try:
        assert get_synchronous(db.connection()) == "FULL"
    finally:
        db.close()
    normal = SqliteDatabase(str(tmp_path / "other.db"), synchronous="NORMAL")
    try:
        assert get_synchronous(normal.connection()) == "NORMAL"
    finally:
        normal.close()


def test_shop_rejects_an_unknown_level(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SqliteDatabase(str(tmp_path / "x.db"), synchronous="SOMETIMES")  # type: ignore[arg-type]


def test_durable_write_raises_then_restores_the_level(tmp_path: Path) -> None:
    conn = connect(tmp_path / "edge.db")
    try:
        assert apply_policy(conn, tmp_path / "edge.db") == "NORMAL"
        conn.execute("CREATE TABLE t (x)")
        with durable_write(conn):
            assert get_synchronous(conn) == "FULL"
            conn.execute("INSERT INTO t VALUES (1)")
        assert get_synchronous(conn) == "NORMAL"
        conn.execute("BEGIN")
        with pytest.raises(RuntimeError, match="inside a transaction"):
            set_synchronous(conn, "FULL")
        conn.execute("ROLLBACK")
    finally:
        conn.close()


# -- crash loop -----------------------------------------------------------------------
def _acked(lines: list[str]) -> tuple[set[str], int]:
    orders, last_state = set(), 0
    for line in lines:
        kind, _, value = line.partition(" ")
        if kind == "order":
            orders.add(value)
        elif kind == "state":
            last_state = int(value)
    return orders, last_state


@pytest.mark.slow
def test_sigkill_at_random_points_loses_no_acknowledged_write(tmp_path: Path) -> None:
    rng = random.Random(20250301)
    data = tmp_path / "data"
    acked: set[str] = set()
    kills = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and kills < 25:
        proc = subprocess.Popen(
            [sys.executable, str(LOAD), str(data)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        out = proc.stdout.read()
        proc.wait()
        kills += 1
        orders, last_state = _acked(out.splitlines())
        acked |= orders
        # Each run's acknowledged state must be there before the next run writes.
        edge = sqlite3.connect(data / "edge.db")
        try:
            assert edge.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            row = edge.execute("SELECT state FROM device_state").fetchone()
            if last_state:
                assert row is not None
                # The acknowledged write, or the one after it (committed, not yet printed).
                allowed = {last_state % 101, (last_state + 1) % 101}
                assert json.loads(row[0])["brightness"] in allowed
        finally:
            edge.close()
    assert kills >= 5 and len(acked) > 20
    shop = sqlite3.connect(data / "shop.db")
    try:
        assert shop.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = {r[0] for r in shop.execute("SELECT id FROM orders")}
        missing = acked - stored
        assert not missing, f"{len(missing)} acknowledged orders lost after {kills} kills"
        # The stock ledger still matches the stock: no half-written order.
        s = Shop(SqliteDatabase(str(data / "shop.db")), ShopConfig("edge-1"))
        try:
            assert s.ledger_mismatches() == []
        finally:
            s.db.close()
    finally:
        shop.close()


# -- disk full --------------------------------------------------------------------------
@contextlib.contextmanager
def tiny_filesystem(where: Path, size_kib: int) -> Iterator[Path]:
    where.mkdir()
    if os.geteuid() != 0:
        missing("tmpfs mount", "mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        missing("tmpfs mount", done.stderr.strip())
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill_orders(shop: Shop, member_id: str, acked: list[str], limit: int) -> Exception | None:
    order = {"items": [{"product": "serum", "quantity": 1}]}
    for _ in range(limit):
        try:
            acked.append(shop.create_order(member_id, order).id)
        except Exception as exc:
            return exc
    return None


def _new_shop(path: Path) -> tuple[Shop, str]:
    sys.path.insert(0, str(LOAD.parent))
    from ops_write_load import prepare_shop

    shop = Shop(SqliteDatabase(str(path)), ShopConfig("edge-1"))
    return shop, prepare_shop(shop)


def test_disk_full_on_a_real_tmpfs_fails_cleanly_and_recovers(tmp_path: Path) -> None:
    with tiny_filesystem(tmp_path / "mnt", 1024) as mnt:
        shop, member_id = _new_shop(mnt / "shop.db")
        try:
            acked: list[str] = []
            # Leave ~150 KiB free, so the disk fills after a few hundred orders.
            filler = mnt / "filler"
            free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
            filler.write_bytes(b"\0" * max(free - 150 * 1024, 0))
            error = _fill_orders(shop, member_id, acked, 20_000)
            assert isinstance(error, StorageFailure), f"expected StorageFailure, got {error!r}"
            assert "full" in str(error)
            assert acked, "no order fitted before the disk filled"
            conn = shop.db.connection()  # type: ignore[attr-defined]
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert {r[0] for r in conn.execute("SELECT id FROM orders")} == set(acked)
            assert shop.ledger_mismatches() == []
            filler.unlink()  # space returns
            assert _fill_orders(shop, member_id, acked, 5) is None
        finally:
            shop.db.close()


def test_page_limit_stand_in_for_a_full_disk(tmp_path: Path) -> None:
    """PRAGMA max_page_count makes SQLite report SQLITE_FULL without root."""
    shop, member_id = _new_shop(tmp_path / "shop.db")
    try:
        conn = shop.db.connection()  # type: ignore[attr-defined]
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        conn.execute(f"PRAGMA max_page_count={pages + 20}")
        acked: list[str] = []
        error = _fill_orders(shop, member_id, acked, 20_000)
        assert isinstance(error, StorageFailure), f"expected StorageFailure, got {error!r}"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert {r[0] for r in conn.execute("SELECT id FROM orders")} == set(acked)
        conn.execute("PRAGMA max_page_count=1000000")
        assert _fill_orders(shop, member_id, acked, 5) is None
    finally:
        shop.db.close()


async def test_store_reports_a_full_disk_as_storage_error(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from drivers.model import Availability, DeviceKind, DeviceSnapshot, LightState
    from edge.errors import StorageError
    from edge.store import Store

    store = Store(tmp_path / "edge.db")
    await store.open()
    try:
        await store.call(lambda c: c.execute("PRAGMA max_page_count=1"))
        with pytest.raises(StorageError, match="full"):
            for n in range(5000):
                snap = DeviceSnapshot(
                    f"room/d{n}", DeviceKind.LIGHT, Availability.ONLINE, datetime.now(UTC),
                    LightState(on=True, brightness=50),
                )  # fmt: skip
                await store.save_state(snap)
        assert await store.healthcheck() in (True, False)  # answers, does not hang
    finally:
        await store.close()
