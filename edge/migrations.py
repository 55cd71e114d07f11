"""Schema migrations recorded in a table, per component.

Each component (core, vision, shop, sync, ...) owns an ordered list of SQL
scripts.  ``migrate`` applies the ones not yet recorded in
``schema_migrations``, each in its own transaction together with its record,
so a crash mid-way leaves the schema at a known step.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime


class MigrationError(Exception):
    """A migration failed; the database stays at the previous step."""


def _ensure_table(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " component TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT NOT NULL,"
        " PRIMARY KEY (component, version))"
    )


def current_version(conn: sqlite3.Connection, component: str) -> int:
    _ensure_table(conn)
    row = conn.execute(
        "SELECT MAX(version) FROM schema_migrations WHERE component = ?", (component,)
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(conn: sqlite3.Connection, component: str, steps: Sequence[str]) -> int:
    """Apply the missing ``steps`` (version = index + 1); returns the new version.

    ``conn`` must be in autocommit mode (``isolation_level=None``) or have no
    open transaction; every step runs inside ``BEGIN IMMEDIATE ... COMMIT``.
    """
    _ensure_table(conn)
    done = current_version(conn, component)
    if done > len(steps):
        raise MigrationError(
            f"{component}: database is at version {done}, newer than this program "
            f"({len(steps)}); refusing to run an older release on it"
        )
    for version in range(done + 1, len(steps) + 1):
        script = steps[version - 1]
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in _split(script):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (component, version, applied_at) VALUES (?, ?, ?)",
                (component, version, datetime.now(UTC).isoformat()),
            )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise MigrationError(f"{component} migration {version} failed: {exc}") from exc
    return len(steps)


def _split(script: str) -> list[str]:
    """Split a script into statements (sqlite3.complete_statement keeps triggers whole)."""
    statements: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                statements.append(buf.strip())
            buf = ""
    if buf.strip():
        statements.append(buf.strip())
    return statements
