"""Local state in SQLite: device state, bounded history, command log.

One connection, owned by one thread: every database call runs on a
single-worker executor, so the event loop never blocks on disk and SQLite
never sees two writers from this process.  WAL with ``synchronous=NORMAL``:
a committed transaction survives the process being killed (kill -9); the
durability rule for power loss is in docs/durability.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from drivers.model import DeviceSnapshot
from edge.errors import StorageError
from edge.migrations import migrate
from edge.ops.durability import durable_write
from edge.serialize import snapshot_from_dict, snapshot_to_dict

T = TypeVar("T")
log = logging.getLogger(__name__)

CORE_MIGRATIONS = [
    """
    CREATE TABLE device_state (
        device_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        availability TEXT NOT NULL,
        last_seen TEXT,
        state TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE state_history (
        id INTEGER PRIMARY KEY,
        device_id TEXT NOT NULL,
        ts TEXT NOT NULL,
        availability TEXT NOT NULL,
        state TEXT NOT NULL
    );
    CREATE INDEX state_history_device ON state_history (device_id, id);
    CREATE TABLE command_log (
        id INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        actor_kind TEXT NOT NULL,
        actor_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        scene_id TEXT,
        command TEXT NOT NULL,
        result TEXT NOT NULL,
        detail TEXT,
        duration_ms REAL
    );
    CREATE INDEX command_log_device ON command_log (device_id, id);
    CREATE TABLE heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), ts TEXT NOT NULL);
    """,
    # Older history at one row per device, minute and field (docs/operations.md).
    """
    CREATE TABLE state_history_minute (
        device_id TEXT NOT NULL,
        minute TEXT NOT NULL,
        field TEXT NOT NULL,
        min REAL,
        max REAL,
        mean REAL,
        samples INTEGER NOT NULL,
        last TEXT NOT NULL,
        PRIMARY KEY (device_id, minute, field)
    ) WITHOUT ROWID;
    CREATE INDEX state_history_ts ON state_history (ts);
    """,
]

_PRUNE_EVERY = 500


@dataclass(frozen=True, slots=True)
class CommandRecord:
    actor_kind: str
    actor_id: str
    device_id: str
    command: dict[str, Any]
    result: str  # ok | rejected | timeout | unavailable | io_error | invalid
    detail: str | None = None
    duration_ms: float | None = None
    scene_id: str | None = None
    durable: bool = False  # door lock commands: must survive a power cut
    # When the command was sent: a row spooled through a storage outage keeps
    # its own time, not the time it was finally written.
    ts: str = dataclasses.field(default_factory=lambda: datetime.now(UTC).isoformat())


def connect(path: Path) -> sqlite3.Connection:
    """A connection with the project's pragmas (WAL, NORMAL sync, FK, busy timeout)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


class Store:
    def __init__(self, path: Path, *, history_limit: int = 50_000) -> None:
        self.path = path
        self.history_limit = history_limit
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None
        self._inserts = 0

    # -- lifecycle -----------------------------------------------------------
    async def open(self) -> None:
        """Open and migrate; raises StorageError (a full disk, say).  The store
        stays usable after a failed open: every later call tries again, so it
        recovers by itself when the fault clears."""
        await self.call(lambda _: None)

    def _open(self) -> sqlite3.Connection:
        conn = connect(self.path)
        try:
            migrate(conn, "core", CORE_MIGRATIONS)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _connection(self) -> sqlite3.Connection:
        return self._conn if self._conn is not None else self._open()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        # Joining the database thread blocks: wait for it on another thread.
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)

    async def call(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(connection)`` on the database thread (opening it first if an
        earlier open failed)."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, lambda: fn(self._connection()))
        except sqlite3.OperationalError as exc:
            raise StorageError(f"{self.path}: {exc}") from exc

    # -- device state ----------------------------------------------------------
    async def save_state(self, snap: DeviceSnapshot) -> None:
        record = snapshot_to_dict(snap)
        await self.call(lambda conn: self._save_state(conn, record))

    def _save_state(self, conn: sqlite3.Connection, record: dict[str, Any]) -> None:
        now = datetime.now(UTC).isoformat()
        state = json.dumps(record["state"])
        with conn:  # one transaction: current state and its history row together
            conn.execute("BEGIN")
            conn.execute(
                "INSERT INTO device_state (device_id, kind, availability, last_seen, state,"
                " updated_at) VALUES (?,?,?,?,?,?) ON CONFLICT (device_id) DO UPDATE SET"
                " kind=excluded.kind, availability=excluded.availability,"
                " last_seen=excluded.last_seen, state=excluded.state,"
                " updated_at=excluded.updated_at",
                (
                    record["device_id"],
                    record["kind"],
                    record["availability"],
                    record["last_seen"],
                    state,
                    now,
                ),
            )
            conn.execute(
                "INSERT INTO state_history (device_id, ts, availability, state) VALUES (?,?,?,?)",
                (record["device_id"], now, record["availability"], state),
            )
        self._inserts += 1
        if self._inserts % _PRUNE_EVERY == 0:
            conn.execute(
                "DELETE FROM state_history WHERE id <= (SELECT MAX(id) FROM state_history) - ?",
                (self.history_limit,),
            )

    async def load_states(self) -> dict[str, DeviceSnapshot]:
        def load(conn: sqlite3.Connection) -> dict[str, DeviceSnapshot]:
            out = {}
            cur = conn.execute(
                "SELECT device_id, kind, availability, last_seen, state FROM device_state"
            )
            # Plain sqlite3: sqlite_utils would pull in numpy (~15 MB) on import.
            for device_id, kind, availability, last_seen, state in cur:
                out[device_id] = snapshot_from_dict(
                    {
                        "device_id": device_id,
                        "kind": kind,
                        "availability": availability,
                        "last_seen": last_seen,
                        "state": json.loads(state),
                    }
                )
            return out

        return await self.call(load)

    async def history(self, device_id: str, limit: int = 100) -> list[dict[str, Any]]:
        def rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            cur = conn.execute(
                "SELECT ts, availability, state FROM state_history WHERE device_id = ?"
                " ORDER BY id DESC LIMIT ?",
                (device_id, limit),
            )
            return [{"ts": t, "availability": a, "state": json.loads(s)} for t, a, s in cur]

        return await self.call(rows)

    async def history_minutes(
        self, device_id: str, *, since: str = "", limit: int = 1440
    ) -> list[dict[str, Any]]:
        """Per-minute history of one device (compacted rows), newest first:
        ``minute`` (UTC, ``YYYY-MM-DDTHH:MM``), ``field``, ``min``/``max``/``mean``
        of the stored readings (numbers only), ``samples`` and the ``last`` value."""

        def rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            cur = conn.execute(
                "SELECT minute, field, min, max, mean, samples, last FROM state_history_minute"
                " WHERE device_id = ? AND minute >= ? ORDER BY minute DESC, field LIMIT ?",
                (device_id, since, limit),
            )
            keys = ("minute", "field", "min", "max", "mean", "samples", "last")
            return [{**dict(zip(keys, r, strict=True)), "last": json.loads(r[6])} for r in cur]

        return await self.call(rows)

    async def healthcheck(self) -> bool:
        """True when the database takes a committed write (for the watchdog)."""

        def beat(conn: sqlite3.Connection) -> bool:
            conn.execute(
                "INSERT INTO heartbeat (id, ts) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET ts = excluded.ts",
                (datetime.now(UTC).isoformat(),),
            )
            return True

        try:
            return await self.call(beat)
        except StorageError:
            return False

    # -- command log -----------------------------------------------------------
    async def log_command(self, rec: CommandRecord) -> int:
        def insert(conn: sqlite3.Connection) -> int:
            with durable_write(conn) if rec.durable else contextlib.nullcontext(conn):
                return _insert(conn)

        def _insert(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO command_log (ts, actor_kind, actor_id, device_id, scene_id, command,"
                " result, detail, duration_ms) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    rec.ts,
                    rec.actor_kind,
                    rec.actor_id,
                    rec.device_id,
                    rec.scene_id,
                    json.dumps(rec.command),
                    rec.result,
                    rec.detail,
                    rec.duration_ms,
                ),
            )
            return int(cur.lastrowid or 0)

        # A failure is the caller's to handle: the core spools the row and
        # writes it when storage returns (edge.core, edge.spool), so it is
        # never lost and never blocks the command itself.
        return await self.call(insert)

    async def commands(
        self, *, device_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        def rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            where, args = ("WHERE device_id = ?", [device_id]) if device_id else ("", [])
            conn.row_factory = sqlite3.Row
            try:
                cur = conn.execute(
                    f"SELECT * FROM command_log {where} ORDER BY id DESC LIMIT ?", (*args, limit)
                )
                out = [dict(r) for r in cur]
            finally:
                conn.row_factory = None
            for r in out:
                r["command"] = json.loads(r["command"])
            return out

        return await self.call(rows)
