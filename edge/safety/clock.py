"""The heater clock on disk: when each heater started heating, so a restart
(SIGTERM, kill -9, a crash loop) resumes the auto-off clock, never restarts it.

Its own small SQLite file, ``<data_dir>/safety.db``, with ``synchronous=FULL``:
the start of a heating session is on disk before the guard goes on, power
cut or not.  Kept apart from edge.db so a locked or busy edge.db (a backup,
a long state write) never delays it.  Wall-clock time, because it must mean
the same thing to the next process.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

SAFETY_DB = "safety.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS heater_clock (
    device_id TEXT PRIMARY KEY,
    heating_since REAL NOT NULL
)
"""


class HeaterClock:
    """One heater's persisted heating-since time.  Calls run off the loop."""

    def __init__(self, path: Path, device_id: str) -> None:
        self.path = path
        self.device_id = device_id
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()  # one call at a time on this connection

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=2000")
            conn.execute(_SCHEMA)
            self.path.chmod(0o600)
            self._conn = conn
        return self._conn

    def _load(self) -> float | None:
        row = (
            self._connect()
            .execute(
                "SELECT heating_since FROM heater_clock WHERE device_id = ?", (self.device_id,)
            )
            .fetchone()
        )
        return None if row is None else float(row[0])

    def _save(self, since: float | None) -> None:
        conn = self._connect()
        if since is None:
            conn.execute("DELETE FROM heater_clock WHERE device_id = ?", (self.device_id,))
        else:
            conn.execute(
                "INSERT INTO heater_clock (device_id, heating_since) VALUES (?, ?)"
                " ON CONFLICT (device_id) DO UPDATE SET heating_since = excluded.heating_since",
                (self.device_id, since),
            )

    async def load(self) -> float | None:
        async with self._lock:
            return await asyncio.to_thread(self._load)

    async def save(self, since: float | None) -> None:
        async with self._lock:
            await asyncio.to_thread(self._save, since)

    async def close(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                await asyncio.to_thread(conn.close)
