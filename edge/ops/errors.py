"""Exception tree of the operations commands (CLI maps each to exit code 1 or 2)."""

from __future__ import annotations


class OpsError(Exception):
    """Base of every operations failure."""


class DataDirBusy(OpsError):
    """The data dir is in use by a running daemon (lock held or files open)."""

    def __init__(self, data_dir: str, holders: list[int]) -> None:
        who = ", ".join(str(p) for p in holders) or "unknown"
        super().__init__(f"{data_dir} is in use by a running coresync-edge (pid {who})")
        self.holders = holders


class DataFileUnusable(OpsError):
    """A data file is owned by another user or read-only: the daemon cannot write it."""


class BackupError(OpsError):
    """A backup could not be made (source unreadable, destination full, bad copy)."""


class BackupKeyError(OpsError):
    """The backup key is missing, unreadable, too short, or not the one the backup was made with."""


class RestoreError(OpsError):
    """A backup failed verification or could not be put in place; nothing was changed."""
