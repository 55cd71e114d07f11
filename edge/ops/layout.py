"""Where the daemon keeps its files, and the lock that says it is running.

``<data_dir>/edge.db``       device state, history, command log, LAN API tables
``<data_dir>/shop.db``       orders, stock, members, consent, sync outbox
``<data_dir>/templates.db``  encrypted face templates (when vision is enabled)
``<data_dir>/coresync-edge.lock``  held (flock) by the running daemon

The face-template master key is deliberately *not* in the data dir in a
systemd install: it is the credential ``vision-master-key``
(``LoadCredential=``), so a copy of the data dir alone cannot read a template.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from edge.ops.errors import DataDirBusy

EDGE_DB = "edge.db"
SHOP_DB = "shop.db"
TEMPLATES_DB = "templates.db"
DATABASES = (EDGE_DB, SHOP_DB, TEMPLATES_DB)
LOCK_FILE = "coresync-edge.lock"
KEY_FILE = "door-master.key"  # edge.door.vault.MASTER_KEY
KEY_CREDENTIAL = "vision-master-key"  # vision.templates.CREDENTIAL_NAME
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


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
