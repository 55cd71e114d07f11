"""Put a backup back in place, refusing while a daemon uses the data dir.

Verification comes first: the manifest, the SHA-256 of every stored file,
the backup key (checked against the manifest before anything is decrypted),
then each file is decrypted into a staging file in the data dir and passes
``integrity_check``; a bad backup or a wrong key changes nothing.  The
current files (with their -wal/-shm, which must never be paired with another
database file) are moved aside into ``<data_dir>/pre-restore-<stamp>/``
rather than deleted, then each restored file is renamed into place.

Format 1 backups (plaintext copies, before encryption) still restore.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.ops import backup_crypto as bc
from edge.ops.backup import MANIFEST, _fsync_dir, _sha256
from edge.ops.errors import BackupKeyError, RestoreError
from edge.ops.layout import DATABASES, KEY_FILE, SQLITE_SIDE_FILES, ensure_not_running
from sync.incarnation import mark_restored


@dataclass
class RestoreResult:
    restored: list[str] = field(default_factory=list)
    moved_aside: Path | None = None
    key_installed: Path | None = None
    key_note: str | None = None


def read_manifest(backup_dir: Path) -> dict[str, Any]:
    path = backup_dir / MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
        files = manifest["files"]
        if not isinstance(files, dict):
            raise TypeError("files is not a table")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RestoreError(f"{path}: not a readable backup manifest ({exc})") from exc
    return manifest


def is_encrypted(manifest: dict[str, Any]) -> bool:
    return int(manifest.get("format", 1)) >= 2


def backup_key(manifest: dict[str, Any], secret: str | None) -> bytes | None:
    """The AES key of an encrypted backup, checked; None for a format 1 backup."""
    if not is_encrypted(manifest):
        return None
    if secret is None:
        raise BackupKeyError("this backup is encrypted: give its backup key (--backup-key FILE)")
    try:
        enc = manifest["encryption"]
        salt = base64.b64decode(enc["salt"])
        check = base64.b64decode(enc["check"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RestoreError(f"manifest: bad encryption table ({exc})") from exc
    key = bc.derive_key(secret, salt)
    bc.open_check(key, check)
    return key


def _integrity(path: Path, shown: Path) -> None:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (check,) = conn.execute("PRAGMA integrity_check").fetchone()
    except sqlite3.Error as exc:
        raise RestoreError(f"{shown}: not a SQLite database ({exc})") from exc
    finally:
        conn.close()
    if check != "ok":
        raise RestoreError(f"{shown}: integrity_check says {check}")


def verify_backup(backup_dir: Path, secret: str | None = None) -> dict[str, dict[str, object]]:
    """The manifest's file table, after checking every stored file's SHA-256
    (and, for a plaintext format 1 backup, its integrity); RestoreError if
    anything is off, BackupKeyError for a missing or wrong key."""
    manifest = read_manifest(backup_dir)
    files: dict[str, dict[str, object]] = manifest["files"]
    backup_key(manifest, secret)
    for name, meta in files.items():
        if name not in (*DATABASES, KEY_FILE):
            raise RestoreError(f"{backup_dir / MANIFEST}: unexpected file {name!r}")
        path = backup_dir / str(meta.get("stored_as", name))
        if path.parent != backup_dir:
            raise RestoreError(f"{backup_dir / MANIFEST}: {name} stored outside the backup")
        if not path.is_file():
            raise RestoreError(f"{path}: listed in the manifest but missing")
        if _sha256(path) != meta.get("sha256"):
            raise RestoreError(f"{path}: SHA-256 does not match the manifest (damaged copy)")
        if name in DATABASES and not is_encrypted(manifest):
            _integrity(path, path)
    return files


def restore(
    backup_dir: Path,
    data_dir: Path,
    *,
    secret: str | None = None,
    force: bool = False,
    key_file: Path | None = None,
) -> RestoreResult:
    """Restore ``backup_dir`` into ``data_dir``; ``secret`` is the backup key.

    Raises :class:`~edge.ops.errors.DataDirBusy` while a daemon holds the
    data dir (unless ``force``), :class:`BackupKeyError` without the right
    key, :class:`RestoreError` for a bad backup.
    """
    manifest = read_manifest(backup_dir)
    files = verify_backup(backup_dir, secret)
    key = backup_key(manifest, secret)
    if not force:
        ensure_not_running(data_dir)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    result = RestoreResult()
    # Run as root (sudo), the restored files would be root's and the daemon
    # could not open them: give them the data dir's owner.
    owner = data_dir.stat()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = data_dir / f"pre-restore-{stamp}"
    # Stage (decrypt and check) every file first so a full disk, a damaged
    # chunk or a bad database fails before anything moves.
    staged: list[tuple[Path, Path]] = []
    try:
        for name in (n for n in DATABASES if n in files):
            tmp = data_dir / f".{name}.restoring"
            staged.append((tmp, data_dir / name))
            stored = backup_dir / str(files[name].get("stored_as", name))
            if key is None:
                shutil.copyfile(stored, tmp)
                os.chmod(tmp, 0o600)
                with tmp.open("rb+") as f:
                    os.fsync(f.fileno())
            else:
                bc.decrypt_file(key, name, stored, tmp)
                _integrity(tmp, stored)
            if os.geteuid() == 0:
                os.chown(tmp, owner.st_uid, owner.st_gid)
    except (OSError, RestoreError) as exc:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, RestoreError):
            raise
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
    if KEY_FILE in files:  # only format 1 backups made with --include-key
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
