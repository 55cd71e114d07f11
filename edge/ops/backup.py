"""Online, encrypted backup of the data dir with SQLite's backup API, while the daemon runs.

Each database of :data:`edge.ops.layout.DATA_FILES` is copied page by page
from a consistent snapshot (WAL mode lets the daemon keep writing
meanwhile) into a staging dir inside the data dir, checked with ``PRAGMA
integrity_check``, switched to a self-contained rollback-journal file, then
encrypted (edge.ops.backup_crypto, AES-256-GCM) into the backup; no
plaintext copy ever reaches the backup destination.  ``manifest.json``
lists each file with the SHA-256 of its encrypted form, the scrypt salt and
a key check, nothing about members.  The backup is written to a
``.partial`` directory and renamed when complete, so a crash mid-backup
never leaves something that looks like a good backup.

Face templates are not in backups: ``templates.db`` goes in with its
templates and wrapped member keys deleted (the destruction records stay),
so a member destroyed after a backup cannot come back from it; members
re-enroll after a restore (docs/operations.md).  The template master key is
therefore never copied.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from edge.ops import backup_crypto as bc
from edge.ops.errors import BackupError
from edge.ops.layout import DATA_FILES, DataFile, template_key_path

PREFIX = "coresync-edge-"
STAMP = "%Y%m%dT%H%M%S%fZ"
MANIFEST = "manifest.json"
FORMAT = 2  # 1: plaintext copies (still restorable); 2: encrypted
ENCRYPTED_SUFFIX = ".enc"
# Pages per step: 4096 pages of 4 KiB = 16 MiB between progress reports.
STEP_PAGES = 4096
# The backup API restarts when another process writes the source between
# steps; after this many restarts copy the rest in one step (one snapshot).
MAX_RESTARTS = 3

Progress = Callable[[str, int, int], None]  # (file name, pages done, pages total)


@dataclass
class BackupResult:
    path: Path
    files: dict[str, int] = field(default_factory=dict)  # name -> bytes
    key_copied: bool = False  # the template key: never, since format 2
    key_location: Path | None = None
    templates_left_out: int = 0
    removed: list[Path] = field(default_factory=list)  # rotated away


class _Restarted(Exception):
    pass


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def copy_database(src_path: Path, dst_path: Path, progress: Progress | None = None) -> None:
    """Copy one live SQLite database to ``dst_path`` (created 0600), verified."""
    name = src_path.name
    fd = os.open(dst_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        src = sqlite3.connect(f"file:{src_path}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise BackupError(f"{src_path}: cannot open: {exc}") from exc
    dst = sqlite3.connect(dst_path)
    try:
        restarts = 0
        last_remaining = -1

        def on_step(_status: int, remaining: int, total: int) -> None:
            nonlocal restarts, last_remaining
            if progress is not None:
                progress(name, total - remaining, total)
            if last_remaining >= 0 and remaining > last_remaining:
                restarts += 1
                if restarts >= MAX_RESTARTS:
                    raise _Restarted
            last_remaining = remaining

        try:
            src.backup(dst, pages=STEP_PAGES, progress=on_step, sleep=0)
        except _Restarted:
            # Steady writes keep restarting the stepwise copy: take it in one step.
            src.backup(dst, pages=-1)
            if progress is not None:
                (pages,) = dst.execute("PRAGMA page_count").fetchone()
                progress(name, pages, pages)
        (check,) = dst.execute("PRAGMA integrity_check").fetchone()
        if check != "ok":
            raise BackupError(f"{name}: the copy fails integrity_check: {check}")
        # A single self-contained file: no -wal needed to read the backup.
        dst.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.Error as exc:
        raise BackupError(f"{name}: backup failed: {exc}") from exc
    finally:
        src.close()
        dst.close()
    with dst_path.open("rb+") as f:
        os.fsync(f.fileno())


def strip_biometrics(path: Path, spec: DataFile) -> int:
    """Delete ``spec.biometric_tables`` from the copy at ``path`` and VACUUM it,
    so no freed page keeps a template or a member key; returns the rows gone."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        gone = 0
        conn.execute("PRAGMA foreign_keys=OFF")
        for table in spec.biometric_tables:
            if table in present:
                gone += conn.execute(f'DELETE FROM "{table}"').rowcount
        conn.execute("VACUUM")
    except sqlite3.Error as exc:
        raise BackupError(f"{spec.name}: cannot leave the templates out: {exc}") from exc
    finally:
        conn.close()
    return gone


def backup(
    data_dir: Path,
    dest: Path,
    *,
    secret: str,
    keep: int = 7,
    include_key: bool = False,
    key_file: Path | None = None,
    progress: Progress | None = None,
) -> BackupResult:
    """Back up every data file in ``data_dir`` to ``dest/coresync-edge-<UTC stamp>/``,
    encrypted with a key derived from ``secret``, and keep the ``keep`` newest
    backups there.  ``include_key`` is accepted for old scripts and copies
    nothing: there are no templates in a backup for the key to open."""
    if keep < 1:
        raise BackupError("keep: must be at least 1")
    bc.check_secret(secret, "(given)")
    sources = [(f, data_dir / f.name) for f in DATA_FILES if (data_dir / f.name).is_file()]
    if not sources:
        names = tuple(f.name for f in DATA_FILES)
        raise BackupError(f"data_dir: no database found in {data_dir} (looked for {names})")
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime(STAMP)
    final = dest / f"{PREFIX}{stamp}"
    partial = dest / f".{PREFIX}{stamp}.partial"
    staging = data_dir / f".backup-staging-{stamp}"
    salt = os.urandom(bc.SALT_BYTES)
    key = bc.derive_key(secret, salt)
    result = BackupResult(path=final, key_location=template_key_path(data_dir, key_file))
    del include_key  # see the docstring
    manifest: dict[str, object] = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "host": socket.gethostname(),
        "data_dir": str(data_dir),
        "sqlite": sqlite3.sqlite_version,
        "encryption": {
            "cipher": f"AES-256-GCM, {bc.CHUNK} byte chunks",
            "kdf": "scrypt",
            "n": bc.SCRYPT_N,
            "r": bc.SCRYPT_R,
            "p": bc.SCRYPT_P,
            "salt": base64.b64encode(salt).decode(),
            "check": base64.b64encode(bc.seal_check(key)).decode(),
        },
        "templates": "left out: members re-enroll after a restore",
        "files": {},
    }
    files: dict[str, dict[str, object]] = {}
    partial.mkdir(mode=0o700)
    try:
        staging.mkdir(mode=0o700)
        for spec, src in sources:
            plain = staging / spec.name
            copy_database(src, plain, progress)
            if spec.backup == "without_biometrics":
                result.templates_left_out += strip_biometrics(plain, spec)
            stored = partial / f"{spec.name}{ENCRYPTED_SUFFIX}"
            bc.encrypt_file(key, spec.name, plain, stored)
            size = plain.stat().st_size
            plain.unlink()
            files[spec.name] = {
                "stored_as": stored.name,
                "bytes": size,
                "sha256": _sha256(stored),
            }
            result.files[spec.name] = size
        manifest["files"] = files
        manifest["key_included"] = False
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        with (partial / MANIFEST).open("rb") as f:
            os.fsync(f.fileno())
        _fsync_dir(partial)
        partial.rename(final)
        _fsync_dir(dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result.removed = rotate(dest, keep)
    return result


def list_backups(dest: Path) -> list[Path]:
    """Complete backups in ``dest``, oldest first."""
    if not dest.is_dir():
        return []
    found = [
        p
        for p in dest.iterdir()
        if p.is_dir() and p.name.startswith(PREFIX) and (p / MANIFEST).is_file()
    ]
    return sorted(found, key=lambda p: p.name)


def rotate(dest: Path, keep: int, *, stale_partial_s: float = 86_400) -> list[Path]:
    """Delete all but the ``keep`` newest backups, and day-old ``.partial`` leftovers."""
    backups = list_backups(dest)
    doomed = backups[: max(len(backups) - keep, 0)]
    now = time.time()
    for p in dest.iterdir():
        if p.name.endswith(".partial") and p.name.startswith(f".{PREFIX}"):
            with contextlib.suppress(OSError):
                if now - p.stat().st_mtime > stale_partial_s:
                    doomed.append(p)
    for p in doomed:
        shutil.rmtree(p, ignore_errors=True)
    return doomed
