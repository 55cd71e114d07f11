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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

SAFETY_DB = "safety.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS heater_clock (
    device_id TEXT PRIMARY KEY,
    heating_since REAL NOT NULL
)
"""


class HeaterClock:
    """One heater's persisted heating-since time.  Calls run off the loop, on
    one thread of its own: a caller cancelled mid-write (a guard stopping)
    cannot let ``close`` run beside the write still in progress, which
    SQLite's connection does not survive."""

    def __init__(self, path: Path, device_id: str) -> None:
        self.path = path
        self.device_id = device_id
        self._conn: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="heater-clock")

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

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def load(self) -> float | None:
        return await self._call(self._load)

    async def save(self, since: float | None) -> None:
        await self._call(self._save, since)

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def close(self) -> None:
        # Queued behind any write still running on the clock's thread.
        await self._call(self._close)
