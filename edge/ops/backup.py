"""Online backup of the data dir with SQLite's backup API, while the daemon runs.

Each database is copied page by page from a consistent snapshot (WAL mode
lets the daemon keep writing meanwhile), checked with ``PRAGMA
integrity_check``, switched to a self-contained rollback-journal file, and
listed with its SHA-256 in ``manifest.json``.  The backup is written to a
``.partial`` directory and renamed when complete, so a crash mid-backup
never leaves something that looks like a good backup.

The face-template master key is not copied unless asked (``include_key``):
a backup is meant to be carried off the box, and templates plus their key
in one place would undo the crypto-shredding that ``destroy_member`` relies
on.  Back the key up separately (see docs/operations.md).
"""

from __future__ import annotations

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

from edge.ops.errors import BackupError
from edge.ops.layout import DATABASES, KEY_FILE, template_key_path

PREFIX = "coresync-edge-"
STAMP = "%Y%m%dT%H%M%S%fZ"
MANIFEST = "manifest.json"
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
    key_copied: bool = False
    key_location: Path | None = None
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


def backup(
    data_dir: Path,
    dest: Path,
    *,
    keep: int = 7,
    include_key: bool = False,
    key_file: Path | None = None,
    progress: Progress | None = None,
) -> BackupResult:
    """Back up every database in ``data_dir`` to ``dest/coresync-edge-<UTC stamp>/``
    and keep the ``keep`` newest backups there."""
    if keep < 1:
        raise BackupError("keep: must be at least 1")
    sources = [data_dir / n for n in DATABASES if (data_dir / n).is_file()]
    if not sources:
        raise BackupError(f"data_dir: no database found in {data_dir} (looked for {DATABASES})")
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime(STAMP)
    final = dest / f"{PREFIX}{stamp}"
    partial = dest / f".{PREFIX}{stamp}.partial"
    partial.mkdir(mode=0o700)
    result = BackupResult(path=final, key_location=template_key_path(data_dir, key_file))
    manifest: dict[str, object] = {
        "format": 1,
        "created_at": datetime.now(UTC).isoformat(),
        "host": socket.gethostname(),
        "data_dir": str(data_dir),
        "sqlite": sqlite3.sqlite_version,
        "files": {},
    }
    files: dict[str, dict[str, object]] = {}
    try:
        for src in sources:
            dst = partial / src.name
            copy_database(src, dst, progress)
            size = dst.stat().st_size
            files[src.name] = {"bytes": size, "sha256": _sha256(dst)}
            result.files[src.name] = size
        if include_key:
            if result.key_location is None:
                raise BackupError("include_key: no template master key found to copy")
            key_copy = partial / KEY_FILE
            fd = os.open(key_copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(result.key_location.read_bytes())
                f.flush()
                os.fsync(f.fileno())
            files[KEY_FILE] = {"bytes": key_copy.stat().st_size, "sha256": _sha256(key_copy)}
            result.key_copied = True
        manifest["files"] = files
        manifest["key_included"] = result.key_copied
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        with (partial / MANIFEST).open("rb") as f:
            os.fsync(f.fileno())
        _fsync_dir(partial)
        partial.rename(final)
        _fsync_dir(dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
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
