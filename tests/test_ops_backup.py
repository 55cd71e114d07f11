"""Online backup and restore on real SQLite files under a concurrent write load."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.ops.backup import MANIFEST, backup, list_backups
from edge.ops.errors import DataDirBusy, RestoreError
from edge.ops.layout import KEY_FILE, DataDirLock, lock_holder
from edge.ops.restore import restore

LOAD = Path(__file__).with_name("ops_write_load.py")


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """A child process writing orders and device state into ``data`` until killed."""
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, str(LOAD), str(data), "--sync", "NORMAL"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    try:
        yield data, proc
    finally:
        proc.kill()
        proc.wait()


def _orders(db: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return {r[0] for r in conn.execute("SELECT id FROM orders")}
    finally:
        conn.close()


def wait_for_orders(db: Path, at_least: int, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while (count := len(_orders(db))) < at_least:
        assert time.monotonic() < deadline, f"{count} orders in {db}, waited for {at_least}"
        time.sleep(0.05)


def test_round_trip_under_concurrent_writes(
    writer: tuple[Path, subprocess.Popen[str]], tmp_path: Path
) -> None:
    data, proc = writer
    wait_for_orders(data / "shop.db", at_least=20)
    pages: list[tuple[str, int, int]] = []
    result = backup(data, tmp_path / "backups", progress=lambda *a: pages.append(a))
    # The writer kept going during and after the backup.
    wait_for_orders(data / "shop.db", at_least=len(_orders(result.path / "shop.db")) + 5)
    assert proc.poll() is None
    assert set(result.files) == {"edge.db", "shop.db"}
    assert {name for name, _, _ in pages} == {"edge.db", "shop.db"}
    assert all(done == total for name, done, total in pages[-1:])
    for name in result.files:
        assert (result.path / name).stat().st_mode & 0o777 == 0o600
    assert result.path.stat().st_mode & 0o777 == 0o700
    backed_up = _orders(result.path / "shop.db")
    assert backed_up

    # Restore refuses while the writer has the databases open.
    target = tmp_path / "restored"
    with pytest.raises(DataDirBusy) as busy:
        restore(result.path, data)
    assert proc.pid in busy.value.holders

    # Into a fresh dir it succeeds, and holds exactly the snapshot.
    restore(result.path, target)
    assert _orders(target / "shop.db") == backed_up
    proc.kill()
    proc.wait()
    live = _orders(data / "shop.db")
    assert backed_up < live  # a consistent point-in-time prefix of the live data


def test_restore_moves_the_old_files_aside_and_drops_their_wal(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    conn = sqlite3.connect(data / "shop.db")
    conn.execute("CREATE TABLE orders (id TEXT)")
    conn.execute("INSERT INTO orders VALUES ('a')")
    conn.commit()
    conn.close()
    made = backup(data, tmp_path / "b")
    conn = sqlite3.connect(data / "shop.db")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("INSERT INTO orders VALUES ('b')")
    conn.commit()
    conn.close()
    Path(f"{data / 'shop.db'}-wal").write_bytes(b"stale wal from another life")
    result = restore(made.path, data)
    assert result.moved_aside is not None and (result.moved_aside / "shop.db-wal").exists()
    assert not Path(f"{data / 'shop.db'}-wal").exists()
    assert _orders(data / "shop.db") == {"a"}


def test_rotation_keeps_the_newest(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    sqlite3.connect(data / "edge.db").execute("CREATE TABLE t (x)").connection.close()
    made = [backup(data, tmp_path / "b", keep=2).path for _ in range(4)]
    assert list_backups(tmp_path / "b") == made[-2:]


def test_key_is_not_copied_unless_asked(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    sqlite3.connect(data / "edge.db").execute("CREATE TABLE t (x)").connection.close()
    key = data / KEY_FILE
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    plain = backup(data, tmp_path / "b")
    assert not plain.key_copied and plain.key_location == key
    assert not (plain.path / KEY_FILE).exists()
    with_key = backup(data, tmp_path / "b", include_key=True)
    copied = with_key.path / KEY_FILE
    assert copied.read_bytes() == key.read_bytes()
    assert copied.stat().st_mode & 0o777 == 0o600
    # Restoring onto a box without the key installs it, 0600.
    fresh = tmp_path / "fresh"
    result = restore(with_key.path, fresh)
    assert result.key_installed == fresh / KEY_FILE
    assert (fresh / KEY_FILE).stat().st_mode & 0o777 == 0o600


def test_a_damaged_backup_changes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    conn = sqlite3.connect(data / "shop.db")
    conn.execute("CREATE TABLE orders (id TEXT)")
    conn.commit()
    conn.close()
    made = backup(data, tmp_path / "b")
    before = (data / "shop.db").read_bytes()
    with (made.path / "shop.db").open("r+b") as f:
        f.seek(100)
        f.write(b"\xff" * 16)
    with pytest.raises(RestoreError, match="SHA-256"):
        restore(made.path, data)
    (made.path / MANIFEST).write_text("{")
    with pytest.raises(RestoreError, match="manifest"):
        restore(made.path, data)
    assert (data / "shop.db").read_bytes() == before


def test_lock_held_by_a_daemon_blocks_restore_unless_forced(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    sqlite3.connect(data / "edge.db").execute("CREATE TABLE t (x)").connection.close()
    made = backup(data, tmp_path / "b")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from edge.ops.layout import DataDirLock;"
            "DataDirLock(Path(sys.argv[1])).acquire(); print('locked', flush=True); time.sleep(60)",
            str(data),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert lock_holder(data) == holder.pid
        with pytest.raises(DataDirBusy):
            DataDirLock(data).acquire()
        with pytest.raises(DataDirBusy) as busy:
            restore(made.path, data)
        assert busy.value.holders == [holder.pid]
        assert restore(made.path, data, force=True).restored == ["edge.db"]
    finally:
        holder.kill()
        holder.wait()
    assert lock_holder(data) is None  # the kernel dropped the lock with the process


def test_cli_backup_and_restore(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    sqlite3.connect(data / "edge.db").execute("CREATE TABLE t (x)").connection.close()
    (data / KEY_FILE).write_bytes(os.urandom(32))
    cli = [sys.executable, "-m", "edge.cli_ops"]
    done = subprocess.run(
        [*cli, "backup", "--data-dir", str(data), "--dest", str(tmp_path / "b"), "--keep", "3"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "NOT copied" in done.stdout and str(data / KEY_FILE) in done.stdout
    assert "edge.db:" in done.stderr  # progress
    (made,) = list_backups(tmp_path / "b")
    done = subprocess.run(
        [*cli, "restore", str(made), "--data-dir", str(tmp_path / "new")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "new" / "edge.db").is_file()
    bad = subprocess.run(
        [*cli, "backup", "--data-dir", str(tmp_path / "nothing"), "--dest", str(tmp_path / "b")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "data_dir: no database found" in bad.stderr
