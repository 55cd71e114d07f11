"""Put a backup back in place, refusing while a daemon uses the data dir.

Verification comes first (manifest, SHA-256 of every file, integrity_check),
so a bad backup changes nothing.  The current files (with their -wal/-shm,
which must never be paired with another database file) are moved aside into
``<data_dir>/pre-restore-<stamp>/`` rather than deleted, then each restored
file is renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from edge.ops.backup import MANIFEST, _fsync_dir, _sha256
from edge.ops.errors import RestoreError
from edge.ops.layout import DATABASES, KEY_FILE, SQLITE_SIDE_FILES, ensure_not_running
from sync.incarnation import mark_restored


@dataclass
class RestoreResult:
    restored: list[str] = field(default_factory=list)
    moved_aside: Path | None = None
    key_installed: Path | None = None
    key_note: str | None = None


def verify_backup(backup_dir: Path) -> dict[str, dict[str, object]]:
    """The manifest's file table, after checking every file; RestoreError if anything is off."""
    manifest_path = backup_dir / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
        files: dict[str, dict[str, object]] = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RestoreError(f"{manifest_path}: not a readable backup manifest ({exc})") from exc
    for name, meta in files.items():
        if name not in (*DATABASES, KEY_FILE):
            raise RestoreError(f"{manifest_path}: unexpected file {name!r}")
        path = backup_dir / name
        if not path.is_file():
            raise RestoreError(f"{path}: listed in the manifest but missing")
        if _sha256(path) != meta.get("sha256"):
            raise RestoreError(f"{path}: SHA-256 does not match the manifest (damaged copy)")
        if name in DATABASES:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                (check,) = conn.execute("PRAGMA integrity_check").fetchone()
            except sqlite3.Error as exc:
                raise RestoreError(f"{path}: not a SQLite database ({exc})") from exc
            finally:
                conn.close()
            if check != "ok":
                raise RestoreError(f"{path}: integrity_check says {check}")
    return files


def restore(
    backup_dir: Path, data_dir: Path, *, force: bool = False, key_file: Path | None = None
) -> RestoreResult:
    """Restore ``backup_dir`` into ``data_dir``.

    Raises :class:`~edge.ops.errors.DataDirBusy` while a daemon holds the
    data dir (unless ``force``), :class:`RestoreError` for a bad backup.
    """
    files = verify_backup(backup_dir)
    if not force:
        ensure_not_running(data_dir)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    result = RestoreResult()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = data_dir / f"pre-restore-{stamp}"
    # Stage every copy first so a full disk fails before anything moves.
    staged: list[tuple[Path, Path]] = []
    try:
        for name in (n for n in DATABASES if n in files):
            tmp = data_dir / f".{name}.restoring"
            shutil.copyfile(backup_dir / name, tmp)
            os.chmod(tmp, 0o600)
            with tmp.open("rb+") as f:
                os.fsync(f.fileno())
            staged.append((tmp, data_dir / name))
    except OSError as exc:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise RestoreError(f"{data_dir}: cannot stage the restored files: {exc}") from exc
    for tmp, target in staged:
        for suffix in ("", *SQLITE_SIDE_FILES):
            old = Path(f"{target}{suffix}")
            if old.exists():
                aside.mkdir(mode=0o700, exist_ok=True)
                old.rename(aside / old.name)
                result.moved_aside = aside
        tmp.rename(target)
        result.restored.append(target.name)
    _fsync_dir(data_dir)
    if KEY_FILE in files:
        _restore_key(backup_dir / KEY_FILE, key_file or data_dir / KEY_FILE, result)
    mark_restored(data_dir)  # the restored disk syncs as a new incarnation (docs/sync.md)
    return result


def _restore_key(src: Path, target: Path, result: RestoreResult) -> None:
    if target.exists():
        if target.read_bytes() != src.read_bytes():
            result.key_note = (
                f"kept the existing key {target}; it differs from the backup's key, "
                "so templates from this backup will not decrypt with it"
            )
        return
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(src.read_bytes())
        f.flush()
        os.fsync(f.fileno())
    result.key_installed = target
