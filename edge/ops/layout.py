"""Where the daemon keeps its files, and the lock that says it is running.

:data:`DATA_FILES` is the one declaration of the data dir's databases: what
each holds, its SQLite ``synchronous`` level, its critical tables and how it
goes into a backup.  Backup, restore, doctor, health and the durability
policy (``edge.ops.durability.POLICY``) are all derived from it.

``<data_dir>/coresync-edge.lock`` is held (flock) by the running daemon.

The face-template master key is deliberately *not* in the data dir in a
systemd install: it is the credential ``vision-master-key``
(``LoadCredential=``), so a copy of the data dir alone cannot read a template.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edge.ops.errors import DataDirBusy, DataFileUnusable

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
# How a file goes into a backup: whole, or with the biometric tables emptied
# (templates and the member keys that decrypt them never leave the box, so a
# member destroyed after a backup cannot be brought back from it).
BackupMode = Literal["whole", "without_biometrics"]


@dataclass(frozen=True)
class DataFile:
    name: str
    holds: str
    synchronous: Synchronous
    critical_tables: tuple[str, ...]
    backup: BackupMode = "whole"
    # Tables emptied in the backup copy when ``backup == "without_biometrics"``.
    biometric_tables: tuple[str, ...] = ()


DATA_FILES: tuple[DataFile, ...] = (
    DataFile(
        "edge.db",
        "device state, history, command log, LAN API tables (users, tablets, audit log)",
        # High rate and re-readable from the devices: NORMAL, with
        # durable_write() around its few critical writes.
        "NORMAL",
        ("command_log (lock commands)", "api_users", "tablets (revocations)", "audit_log"),
    ),
    DataFile(
        "shop.db",
        "orders, stock, members, attendance, sync outbox",
        "FULL",
        (
            "orders",
            "order_items",
            "stock_movements",
            "members",
            "member_consent",
            "attendance_events",
            "outbox",
            "sync_changes",
        ),
    ),
    DataFile(
        "door.db",
        "door events, face-access consent records, enrolments, PIN hashes and lockouts",
        "FULL",
        ("door_events", "consent_records", "enrollments", "door_pins"),
    ),
    DataFile(
        "templates.db",
        "encrypted face templates, wrapped member keys, template destruction records",
        "FULL",
        ("template_destructions", "member_keys"),
        backup="without_biometrics",
        biometric_tables=("face_templates", "member_keys"),
    ),
)
BY_NAME: dict[str, DataFile] = {f.name: f for f in DATA_FILES}
EDGE_DB, SHOP_DB, DOOR_DB, TEMPLATES_DB = (f.name for f in DATA_FILES)
DATABASES: tuple[str, ...] = tuple(BY_NAME)
LOCK_FILE = "coresync-edge.lock"
KEY_FILE = "door-master.key"  # edge.door.vault.MASTER_KEY
KEY_CREDENTIAL = "vision-master-key"  # vision.templates.CREDENTIAL_NAME
# The backup key's credential name (edge.ops.backup_crypto; here so the CLI
# can name it without loading the cryptography library).
BACKUP_KEY_CREDENTIAL = "backup-key"
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class FileProblem:
    """Why the daemon could not use one data file; ``fix`` never destroys data."""

    path: Path
    detail: str
    fix: str

    def line(self) -> str:
        return f"{self.path}: {self.detail} ({self.fix})"


def file_problems(data_dir: Path, uid: int | None = None) -> list[FileProblem]:
    """Ownership and writability of the data dir and each present data file
    (with its -wal/-shm).  Checked from the owner and mode bits, not with
    ``os.access``: root passes every access check, but SQLite still fails when
    the file is read-only or belongs to another user after a restore as root.
    Health and doctor call this; start refuses with its first line."""
    uid = os.geteuid() if uid is None else uid
    out = []
    paths = [Path(data_dir)]
    for f in DATA_FILES:
        for suffix in ("", "-wal", "-shm"):
            paths.append(Path(data_dir) / f"{f.name}{suffix}")
    for path in paths:
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        except OSError as exc:
            out.append(FileProblem(path, f"cannot stat: {exc.strerror}", "check the disk"))
            continue
        owner = st.st_uid
        if owner != uid:
            out.append(
                FileProblem(
                    path,
                    f"owned by uid {owner}, the daemon runs as uid {uid}",
                    f"chown {_user(uid)} {path}",
                )
            )
        elif not st.st_mode & stat.S_IWUSR:
            out.append(
                FileProblem(
                    path,
                    f"read-only (mode {st.st_mode & 0o777:o})",
                    f"chmod u+w {path}",
                )
            )
    return out


def data_files_health(data_dir: Path) -> dict[str, str]:
    """Each data file present -> "ok" or why the daemon cannot write it, for
    ``/healthz`` (blocking stat calls: run it off the event loop)."""
    problems = file_problems(data_dir)
    out = {}
    for f in DATA_FILES:
        if not (Path(data_dir) / f.name).is_file():
            continue
        mine = [p for p in problems if p.path.name.startswith(f.name)]
        out[f.name] = "; ".join(f"{p.path.name} {p.detail}" for p in mine) or "ok"
    return out


def check_data_files(data_dir: Path) -> None:
    """Raise :class:`DataFileUnusable` naming the first unusable data file."""
    problems = file_problems(data_dir)
    if problems:
        extra = len(problems) - 1
        more = f" (+{extra} more; run coresync-edge doctor)" if extra else ""
        raise DataFileUnusable(f"cannot use the data dir: {problems[0].line()}{more}")


def _user(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def template_key_path(data_dir: Path, key_file: Path | None = None) -> Path | None:
    """Where the template master key is: the systemd credential, else
    ``key_file``, else ``<data_dir>/door-master.key``; None when none exists."""
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    candidates = [Path(cred_dir) / KEY_CREDENTIAL] if cred_dir else []
    candidates += [key_file] if key_file is not None else []
    candidates.append(data_dir / KEY_FILE)
    return next((p for p in candidates if p.is_file()), None)


class DataDirLock:
    """An exclusive ``flock`` on ``<data_dir>/coresync-edge.lock`` holding our pid.

    The kernel drops the lock when the process dies (even on SIGKILL), so a
    stale file never blocks a restart.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = _read_pid(self.path)
            raise DataDirBusy(str(self.path.parent), [pid] if pid else []) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing drops the flock

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def lock_holder(data_dir: Path) -> int | None:
    """The pid holding the data-dir lock (0 if held by an unknown pid), else None."""
    path = Path(data_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_pid(path) or 0
    finally:
        os.close(fd)  # also releases the probe lock if we got it
    return None


def processes_using(paths: list[Path]) -> list[int]:
    """Pids (other than ours) with one of ``paths`` open, from /proc/*/fd.

    Sees only processes we may inspect (same user, or root); a daemon that
    predates the lock file is still found this way.
    """
    targets = set()
    for p in paths:
        for suffix in ("", *SQLITE_SIDE_FILES):
            with contextlib.suppress(OSError):
                targets.add(os.path.realpath(f"{p}{suffix}"))
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in targets:
                    found.append(int(entry.name))
                    break
            except OSError:
                continue
    return sorted(found)


def ensure_not_running(data_dir: Path) -> None:
    """Raise :class:`DataDirBusy` when a daemon holds the lock or a database is open."""
    holder = lock_holder(data_dir)
    users = processes_using([Path(data_dir) / name for name in DATABASES])
    if holder is not None or users:
        pids = sorted({*users, *([holder] if holder else [])})
        raise DataDirBusy(str(data_dir), pids)
