"""Which failures are outages of the machine (a full disk, a read-only or
locked database file) rather than bugs.

An outage is not fixed by restarting the process, so the supervisor retries
the component without charging its restart budget, and the API answers 503
with the reason instead of a 500.
"""

from __future__ import annotations

import errno
import sqlite3

from edge.errors import StorageError

_OS_OUTAGES = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO, errno.EACCES}
_FULL = ("full", "no space")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def is_storage_outage(exc: BaseException) -> bool:
    for e in _chain(exc):
        if isinstance(e, StorageError | sqlite3.OperationalError):
            return True
        if isinstance(e, OSError) and e.errno in _OS_OUTAGES:
            return True
    return False


def storage_reason(exc: BaseException) -> str:
    """A short, clear reason for an operator or a tablet (no path, no secret)."""
    text = " ".join(str(e) for e in _chain(exc)).lower()
    if any(word in text for word in _FULL) or any(
        isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT) for e in _chain(exc)
    ):
        return "the controller's disk is full: nothing can be saved until space is freed"
    if "readonly" in text or "read-only" in text:
        return "the local database is read-only: nothing can be saved"
    if "locked" in text or "busy" in text:
        return "the local database is locked by another process: try again shortly"
    if "disk i/o" in text:
        return "the local database cannot be written (disk I/O error; is the disk full?)"
    return "the local database is unavailable"
