"""Online backup and restore on real SQLite files under a concurrent write load."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.ops.backup import MANIFEST, backup, list_backups
from edge.ops.errors import BackupKeyError, DataDirBusy, RestoreError
from edge.ops.layout import KEY_FILE, DataDirLock, lock_holder
from edge.ops.restore import restore

LOAD = Path(__file__).with_name("ops_write_load.py")
SECRET = "test-backup-key-0123456789abcdef"


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
    result = backup(data, tmp_path / "backups", secret=SECRET, progress=lambda *a: pages.append(a))
    assert proc.poll() is None
    assert set(result.files) == {"edge.db", "shop.db"}
    assert {name for name, _, _ in pages} == {"edge.db", "shop.db"}
    assert all(done == total for name, done, total in pages[-1:])
    for name in result.files:
        assert (result.path / f"{name}.enc").stat().st_mode & 0o777 == 0o600
    assert result.path.stat().st_mode & 0o777 == 0o700
    # Into a fresh dir it succeeds, and holds a consistent snapshot.
    target = tmp_path / "restored"
    restore(result.path, target, secret=SECRET)
    backed_up = _orders(target / "shop.db")
    assert backed_up
    # The writer kept going during and after the backup.
    wait_for_orders(data / "shop.db", at_least=len(backed_up) + 5)

    # Restore refuses while the writer has the databases open.
    with pytest.raises(DataDirBusy) as busy:
        restore(result.path, data, secret=SECRET)
    assert proc.pid in busy.value.holders
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
    made = backup(data, tmp_path / "b", secret=SECRET)
    conn = sqlite3.connect(data / "shop.db")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("INSERT INTO orders VALUES ('b')")
    conn.commit()
    conn.close()
    Path(f"{data / 'shop.db'}-wal").write_bytes(b"stale wal from another life")
    result = restore(made.path, data, secret=SECRET)
    assert result.moved_aside is not None and (result.moved_aside / "shop.db-wal").exists()
    assert not Path(f"{data / 'shop.db'}-wal").exists()
    assert _orders(data / "shop.db") == {"a"}


def test_rotation_keeps_the_newest(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    sqlite3.connect(data / "edge.db").execute("CREATE TABLE t (x)").connection.close()
    made = [backup(data, tmp_path / "b", secret=SECRET, keep=2).path for _ in range(4)]
    assert list_backups(tmp_path / "b") == made[-2:]


def test_a_damaged_backup_changes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    conn = sqlite3.connect(data / "shop.db")
    conn.execute("CREATE TABLE orders (id TEXT)")
    conn.commit()
    conn.close()
    made = backup(data, tmp_path / "b", secret=SECRET)
    before = (data / "shop.db").read_bytes()
    with (made.path / "shop.db.enc").open("r+b") as f:
        f.seek(100)
        f.write(b"\xff" * 16)
    with pytest.raises(RestoreError, match="SHA-256"):
        restore(made.path, data, secret=SECRET)
    (made.path / MANIFEST).write_text("{")
    with pytest.raises(RestoreError, match="manifest"):
        restore(made.path, data, secret=SECRET)
    assert (data / "shop.db").read_bytes() == before


def test_lock_held_by_a_daemon_blocks_restore_unless_forced(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    sqlite3.connect(data / "edge.db").execute("CREATE TABLE t (x)").connection.close()
    made = backup(data, tmp_path / "b", secret=SECRET)
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
            restore(made.path, data, secret=SECRET)
        assert busy.value.holders == [holder.pid]
        assert restore(made.path, data, secret=SECRET, force=True).restored == ["edge.db"]
    finally:
        holder.kill()
        holder.wait()
    assert lock_holder(data) is None  # the kernel dropped the lock with the process


def test_cli_backup_and_restore(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    sqlite3.connect(data / "edge.db").execute("CREATE TABLE t (x)").connection.close()
    (data / KEY_FILE).write_bytes(os.urandom(32))
    key = tmp_path / "backup-key"
    key.write_text(SECRET + "\n")
    cli = [sys.executable, "-m", "edge.cli_ops"]
    base = ["backup", "--data-dir", str(data), "--dest", str(tmp_path / "b"), "--keep", "3"]
    quiet_stdin = {"capture_output": True, "text": True, "stdin": subprocess.DEVNULL}
    keyless = subprocess.run([*cli, *base], **quiet_stdin)  # type: ignore[call-overload]
    assert keyless.returncode == 1 and "no backup key" in keyless.stderr, keyless.stderr
    done = subprocess.run([*cli, *base, "--backup-key", str(key)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "encrypted" in done.stdout and "re-enroll" in done.stdout
    assert "edge.db:" in done.stderr  # progress
    (made,) = list_backups(tmp_path / "b")
    restore_cmd = [*cli, "restore", str(made), "--data-dir", str(tmp_path / "new")]
    # Not on a terminal and no key given: refused with the way to give it.
    keyless = subprocess.run(restore_cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert keyless.returncode == 1 and "--backup-key" in keyless.stderr, keyless.stderr
    assert not (tmp_path / "new" / "edge.db").exists()
    done = subprocess.run(
        [*restore_cmd, "--backup-key", str(key)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "new" / "edge.db").is_file()
    bad = subprocess.run(
        [
            *cli,
            "backup",
            "--data-dir",
            str(tmp_path / "nothing"),
            "--dest",
            str(tmp_path / "b"),
            "--backup-key",
            str(key),
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "data_dir: no database found" in bad.stderr


def _spa_with_members_and_door(data: Path) -> tuple[str, str]:
    """A shop with a named member, and door.db and templates.db through the
    real stores: consent granted, two door events, one enrolled member and
    one whose templates were destroyed.  Returns (kept, destroyed) member ids."""
    import numpy as np

    from edge.door.store import DoorEvent, DoorStore
    from edge.shop import Shop, ShopConfig
    from edge.shop.db import SqliteDatabase
    from vision.templates import TemplateStore

    data.mkdir(mode=0o700)
    shop = Shop(SqliteDatabase(str(data / "shop.db")), ShopConfig("edge-1"))
    shop.migrate()
    kept = shop.create_member(
        {"name": "Henrietta Oakenshield", "email": "henrietta@example.com",
         "phone": "+1 555 0199", "date_of_birth": "1971-04-02"}
    ).id  # fmt: skip
    shop.db.close()
    door = DoorStore(data / "door.db")
    door.grant_consent(kept, "v3", "face access", 365, "front desk")
    door.grant_consent("m-gone", "v3", "face access", 365, "front desk")
    door.record_event(DoorEvent("face", "unlock", "match", member_id=kept, ts=time.time()))
    door.record_event(DoorEvent("pin", "deny", "wrong pin", ts=time.time()))
    door.close()
    templates = TemplateStore(data / "templates.db", os.urandom(32))
    rng = np.random.default_rng(1)
    for member in (kept, "m-gone"):
        templates.enroll(member, rng.standard_normal((2, 128)).astype(np.float32), "consent-1")
    templates.close()
    return kept, "m-gone"


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


def test_backup_is_encrypted_whole_and_restores_consent_and_door_events(tmp_path: Path) -> None:
    data = tmp_path / "data"
    kept, _ = _spa_with_members_and_door(data)
    made = backup(data, tmp_path / "b", secret=SECRET)
    assert set(made.files) == {"shop.db", "door.db", "templates.db"}
    # Opened without its key the backup reveals no member's name, email or id.
    blob = b"".join(p.read_bytes() for p in made.path.iterdir())
    for secret_text in ("Henrietta", "Oakenshield", "henrietta@example.com", kept, "SQLite format"):
        assert secret_text.encode() not in blob, secret_text
    assert not list(data.glob(".backup-staging-*"))  # no plaintext left behind
    # Without the key, or with another, restore refuses and changes nothing.
    target = tmp_path / "restored"
    with pytest.raises(BackupKeyError, match="encrypted"):
        restore(made.path, target)
    with pytest.raises(BackupKeyError, match="wrong backup key"):
        restore(made.path, target, secret="another-key-0123456789")
    assert not target.exists() or not list(target.iterdir())
    restore(made.path, target, secret=SECRET)
    consent = _rows(target / "door.db", "SELECT member_id FROM consent_records")
    assert sorted(r[0] for r in consent) == sorted([kept, "m-gone"])
    events = _rows(target / "door.db", "SELECT decision FROM door_events ORDER BY id")
    assert [r[0] for r in events] == ["unlock", "deny"]
    names = _rows(target / "shop.db", "SELECT name FROM members")
    assert names == [("Henrietta Oakenshield",)]


def test_templates_are_left_out_so_a_destroyed_member_cannot_come_back(tmp_path: Path) -> None:
    data = tmp_path / "data"
    kept, gone = _spa_with_members_and_door(data)
    made = backup(data, tmp_path / "b", secret=SECRET)
    assert made.templates_left_out == 2 + 2 + 2  # 4 templates and 2 member keys
    target = tmp_path / "restored"
    restore(made.path, target, secret=SECRET)
    restored = target / "templates.db"
    assert _rows(restored, "SELECT count(*) FROM face_templates") == [(0,)]
    assert _rows(restored, "SELECT count(*) FROM member_keys") == [(0,)]
    # The VACUUM left no ciphertext or wrapped key in a free page.
    live = _rows(data / "templates.db", "SELECT wrapped_key FROM member_keys")
    raw = restored.read_bytes()
    for (wrapped,) in live:
        assert bytes(wrapped) not in raw  # type: ignore[arg-type]
    del kept, gone


def test_a_damaged_encrypted_chunk_changes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _spa_with_members_and_door(data)
    made = backup(data, tmp_path / "b", secret=SECRET)
    stored = made.path / "door.db.enc"
    raw = bytearray(stored.read_bytes())
    raw[200] ^= 0xFF
    stored.write_bytes(bytes(raw))
    # Recompute the manifest hash: only the AEAD tag stands between us and a bad file.
    import hashlib
    import json

    manifest = json.loads((made.path / MANIFEST).read_text())
    manifest["files"]["door.db"]["sha256"] = hashlib.sha256(bytes(raw)).hexdigest()
    (made.path / MANIFEST).write_text(json.dumps(manifest))
    target = tmp_path / "restored"
    target.mkdir()
    with pytest.raises(RestoreError, match="authentication"):
        restore(made.path, target, secret=SECRET)
    assert list(target.iterdir()) == []


@pytest.mark.skipif(shutil.which("script") is None, reason="util-linux script(1) gives a terminal")
def test_restore_asks_for_the_key_on_a_terminal(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _spa_with_members_and_door(data)
    made = backup(data, tmp_path / "b", secret=SECRET)
    target = tmp_path / "restored"
    cmd = f"{sys.executable} -m edge.cli_ops restore {made.path} --data-dir {target}"
    proc = subprocess.Popen(
        ["script", "-qec", cmd, "/dev/null"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdin is not None and proc.stdout is not None
    seen = b""
    deadline = time.monotonic() + 30
    while b"backup key: " not in seen:  # type the key only once asked
        assert time.monotonic() < deadline and proc.poll() is None, seen
        seen += os.read(proc.stdout.fileno(), 1024)
    proc.stdin.write(SECRET.encode() + b"\n")
    proc.stdin.close()
    rest = proc.stdout.read()
    assert proc.wait(30) == 0, seen + rest
    assert SECRET.encode() not in seen + rest  # not echoed
    assert _rows(target / "door.db", "SELECT count(*) FROM consent_records") == [(2,)]


@pytest.mark.skipif(os.geteuid() != 0, reason="restoring for another user needs root")
def test_a_restore_run_as_root_gives_the_files_the_data_dirs_owner(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _spa_with_members_and_door(data)
    made = backup(data, tmp_path / "b", secret=SECRET)
    target = tmp_path / "service-data"
    target.mkdir(mode=0o700)
    os.chown(target, 65534, 65534)  # the service user's data dir
    result = restore(made.path, target, secret=SECRET)
    assert sorted(result.restored) == ["door.db", "shop.db", "templates.db"]
    for name in result.restored:
        st = (target / name).stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (65534, 65534, 0o600), name
