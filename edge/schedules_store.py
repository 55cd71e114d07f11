"""The dashboard's schedules in edge.db (the config file's stay in the file).

Synchronous functions on the store's connection, run on the database thread
with ``Store.call``.  Each row keeps the schedule as JSON exactly as it was
accepted; a row that no longer fits the site (its room left the config) is
kept and reported, never deleted behind the manager's back.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from edge.migrations import migrate
from edge.ops.durability import durable_write

SCHEDULE_MIGRATIONS = [
    """
    CREATE TABLE schedules (
        id TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        updated_by TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
]


def migrate_schedules(conn: sqlite3.Connection) -> None:
    migrate(conn, "schedules", SCHEDULE_MIGRATIONS)


def load_rows(conn: sqlite3.Connection) -> list[tuple[str, str, str, str]]:
    """(id, spec JSON, updated_by, updated_at) of every stored schedule."""
    migrate_schedules(conn)
    cur = conn.execute("SELECT id, spec, updated_by, updated_at FROM schedules ORDER BY id")
    return [(str(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in cur]


def save_row(conn: sqlite3.Connection, schedule_id: str, spec_json: str, by: str) -> None:
    """Insert or replace one schedule, durably (a power cut must not undo an edit).
    The table exists: the runner loaded the stored schedules before any edit."""
    with durable_write(conn):
        conn.execute(
            "INSERT INTO schedules (id, spec, updated_by, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET spec = excluded.spec,"
            " updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            (schedule_id, spec_json, by, datetime.now(UTC).isoformat()),
        )


def delete_row(conn: sqlite3.Connection, schedule_id: str) -> bool:
    with durable_write(conn):
        cur = conn.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,))
    return cur.rowcount > 0
