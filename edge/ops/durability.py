"""The durability rule (docs/durability.md), as code.

SQLite in WAL mode with ``synchronous=NORMAL`` keeps every committed
transaction across a *process* crash (kill -9), but may lose the last
commits before a *power* cut: the WAL is fsynced only at checkpoints.
``synchronous=FULL`` fsyncs the WAL at every commit, so a commit the caller
saw acknowledged survives a power cut too.

Critical data (orders, stock ledger, consent, template destruction records,
door events, the sync outbox) is written FULL; device state and state
history may lose the last seconds (the devices are re-read on start).

``synchronous`` is a per-connection setting that may change between
transactions, so one connection can serve both: :func:`durable_write` makes
one transaction FULL on a NORMAL connection.  Because the WAL is a log, that
fsync also makes every earlier NORMAL commit on the file durable.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edge.ops.layout import DATA_FILES, Synchronous

_LEVELS: tuple[Synchronous, ...] = ("OFF", "NORMAL", "FULL", "EXTRA")

# Default level of each file's connections, from edge.ops.layout.DATA_FILES.
# edge.db is mostly state (high rate, re-readable from the devices): NORMAL,
# with durable_write() around its few critical writes (door commands, staff
# accounts, tablet revocations, the audit log).
POLICY: dict[str, Synchronous] = {f.name: f.synchronous for f in DATA_FILES}

# Tables whose rows must survive a power cut once acknowledged, per file.
CRITICAL_TABLES: dict[str, tuple[str, ...]] = {f.name: f.critical_tables for f in DATA_FILES}


def policy_for(path: Path | str) -> Synchronous:
    """The level a connection on ``path`` should use; unknown files get FULL."""
    return POLICY.get(Path(path).name, "FULL")


def set_synchronous(conn: sqlite3.Connection, level: Synchronous) -> None:
    if level not in _LEVELS:
        raise ValueError(f"synchronous: expected one of {_LEVELS}, got {level!r}")
    if conn.in_transaction:
        # SQLite silently ignores the pragma inside a transaction.
        raise RuntimeError("synchronous cannot change inside a transaction")
    conn.execute(f"PRAGMA synchronous={level}")


def get_synchronous(conn: sqlite3.Connection) -> Synchronous:
    (value,) = conn.execute("PRAGMA synchronous").fetchone()
    return _LEVELS[int(value)]


def apply_policy(conn: sqlite3.Connection, path: Path | str) -> Synchronous:
    """Set the connection's level from :data:`POLICY`; returns it."""
    level = policy_for(path)
    set_synchronous(conn, level)
    return level


@contextmanager
def durable_write(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the enclosed transaction(s) with ``synchronous=FULL``, then restore.

    Use on a NORMAL connection around a write that must survive a power cut::

        with durable_write(conn):
            conn.execute("INSERT INTO command_log ...")
    """
    before = get_synchronous(conn)
    if before in ("FULL", "EXTRA"):
        yield conn
        return
    set_synchronous(conn, "FULL")
    try:
        yield conn
    finally:
        if not conn.in_transaction:
            set_synchronous(conn, before)
