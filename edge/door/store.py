"""The door's own SQLite file: door events, consent history, enrollments, PINs.

Synchronous (sqlite3): :class:`edge.door.service.DoorService` calls it from
its single database thread.  ``PRAGMA synchronous=FULL``: a door event or a
consent withdrawal is on disk before the call returns, power cut or not.
Consent records are append-only (triggers refuse UPDATE and DELETE); a
withdrawal is a new row.  No template, embedding or image is ever stored here.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.door.errors import DoorError
from edge.migrations import migrate
from edge.throttle import Throttle

BUSY_TIMEOUT_MS = 30_000
EVENT_BUSY_TIMEOUT_MS = 2_000

STEPS = [
    """
    CREATE TABLE door_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        method TEXT NOT NULL CHECK (method IN ('face', 'pin', 'remote', 'system')),
        decision TEXT NOT NULL,
        reason TEXT NOT NULL,
        member_id TEXT,
        actor TEXT,
        distance REAL,
        margin REAL,
        liveness TEXT,
        latency_ms TEXT,
        lock_result TEXT
    );
    CREATE INDEX door_events_member ON door_events (member_id, ts);
    CREATE TABLE consent_records (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        member_id TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('grant', 'withdraw')),
        text_version TEXT,
        purpose TEXT,
        retention_days INTEGER,
        witness TEXT NOT NULL,
        note TEXT,
        recorded_at REAL NOT NULL
    );
    CREATE INDEX consent_member ON consent_records (member_id, id);
    CREATE TRIGGER consent_no_update BEFORE UPDATE ON consent_records
    BEGIN SELECT RAISE(ABORT, 'consent records are append-only'); END;
    CREATE TRIGGER consent_no_delete BEFORE DELETE ON consent_records
    BEGIN SELECT RAISE(ABORT, 'consent records are append-only'); END;
    CREATE TABLE enrollments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        member_id TEXT NOT NULL,
        consent_id INTEGER NOT NULL REFERENCES consent_records (id),
        template_count INTEGER NOT NULL,
        enrolled_by TEXT NOT NULL,
        enrolled_at REAL NOT NULL
    );
    CREATE TABLE door_pins (
        member_id TEXT PRIMARY KEY,
        pin_hash TEXT NOT NULL,
        set_by TEXT NOT NULL,
        set_at REAL NOT NULL
    );
    CREATE TABLE pin_failures (
        key TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        first_failure REAL NOT NULL,
        locked_until REAL NOT NULL
    );
    """,
    # The security mode, challenge and period in force for a face or PIN attempt.
    "ALTER TABLE door_events ADD COLUMN security TEXT;",
]


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


@dataclass(frozen=True)
class DoorEvent:
    """One door decision.  Deliberately without any template, embedding or image."""

    method: str  # face | pin | remote | system
    decision: str  # unlock | deny | cooldown | error
    reason: str
    member_id: str | None = None
    actor: str | None = None
    distance: float | None = None
    margin: float | None = None
    liveness: dict[str, Any] | None = None
    latency_ms: dict[str, float] | None = None
    lock_result: str | None = None
    security: dict[str, Any] | None = None
    ts: float = 0.0
    id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ts": self.ts,
            "time": iso(self.ts),
            "method": self.method,
            "decision": self.decision,
            "reason": self.reason,
            "member_id": self.member_id,
            "actor": self.actor,
            "distance": None if self.distance is None else round(self.distance, 4),
            "margin": None if self.margin is None else round(min(self.margin, 9.0), 4),
            "liveness": self.liveness,
            "latency_ms": self.latency_ms,
            "lock_result": self.lock_result,
            "security": self.security,
        }


@dataclass(frozen=True)
class Consent:
    id: int
    member_id: str
    text_version: str
    purpose: str
    retention_days: int
    witness: str
    granted_at: float


class DoorStore:
    """One connection, one thread.  Every write is durable when the call returns."""

    def __init__(self, path: Path) -> None:
        try:
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            # The CLI works beside the daemon: wait for its writes, do not fail.
            self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            # FULL, not WAL's usual NORMAL: a door event must survive a power cut.
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            migrate(self._conn, "door", STEPS)
        except sqlite3.Error as exc:
            raise DoorError(f"cannot open door database {path}: {exc}") from exc
        path.chmod(0o600)

    def close(self) -> None:
        self._conn.close()

    # -- door events -----------------------------------------------------------------
    def record_event(self, event: DoorEvent) -> DoorEvent:
        # A short wait: a door event that cannot be written is spooled by the
        # service, so the camera and the keypad never queue behind a lock.
        self._conn.execute(f"PRAGMA busy_timeout={EVENT_BUSY_TIMEOUT_MS}")
        try:
            return self._record_event(event)
        finally:
            self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    def _record_event(self, event: DoorEvent) -> DoorEvent:
        ts = event.ts or time.time()
        cur = self._conn.execute(
            "INSERT INTO door_events (ts, method, decision, reason, member_id, actor, distance,"
            " margin, liveness, latency_ms, lock_result, security)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                ts,
                event.method,
                event.decision,
                event.reason,
                event.member_id,
                event.actor,
                event.distance,
                None if event.margin is None else min(event.margin, 9.0),
                None if event.liveness is None else json.dumps(event.liveness),
                None if event.latency_ms is None else json.dumps(event.latency_ms),
                event.lock_result,
                None if event.security is None else json.dumps(event.security),
            ),
        )
        return DoorEvent(**{**event.__dict__, "ts": ts, "id": cur.lastrowid})

    def events(self, limit: int = 100, member_id: str | None = None) -> list[DoorEvent]:
        where, args = ("WHERE member_id = ?", [member_id]) if member_id else ("", [])
        rows = self._conn.execute(
            f"SELECT * FROM door_events {where} ORDER BY id DESC LIMIT ?", [*args, limit]
        ).fetchall()
        return [_event(r) for r in rows]

    def last_visit(self, member_id: str) -> float | None:
        row = self._conn.execute(
            "SELECT MAX(ts) FROM door_events WHERE member_id = ? AND decision = 'unlock'",
            (member_id,),
        ).fetchone()
        return None if row[0] is None else float(row[0])

    # -- consent -----------------------------------------------------------------------
    def grant_consent(
        self, member_id: str, text_version: str, purpose: str, retention_days: int, witness: str
    ) -> Consent:
        now = time.time()
        cur = self._conn.execute(
            "INSERT INTO consent_records (member_id, action, text_version, purpose,"
            " retention_days, witness, recorded_at) VALUES (?, 'grant', ?, ?, ?, ?, ?)",
            (member_id, text_version, purpose, retention_days, witness, now),
        )
        assert cur.lastrowid is not None
        return Consent(
            cur.lastrowid, member_id, text_version, purpose, retention_days, witness, now
        )

    def withdraw_consent(self, member_id: str, witness: str, note: str) -> int:
        cur = self._conn.execute(
            "INSERT INTO consent_records (member_id, action, witness, note, recorded_at)"
            " VALUES (?, 'withdraw', ?, ?, ?)",
            (member_id, witness, note, time.time()),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def active_consent(self, member_id: str) -> Consent | None:
        """The latest grant, unless a withdrawal came after it."""
        row = self._conn.execute(
            "SELECT * FROM consent_records WHERE member_id = ? ORDER BY id DESC LIMIT 1",
            (member_id,),
        ).fetchone()
        if row is None or row["action"] != "grant":
            return None
        return Consent(
            row["id"],
            row["member_id"],
            row["text_version"],
            row["purpose"],
            row["retention_days"],
            row["witness"],
            row["recorded_at"],
        )

    def consent_history(self, member_id: str) -> list[dict[str, Any]]:
        rows = self._conn.execute(
            "SELECT * FROM consent_records WHERE member_id = ? ORDER BY id", (member_id,)
        ).fetchall()
        return [{**dict(r), "recorded_at": iso(r["recorded_at"])} for r in rows]

    def consent_members(self) -> dict[str, dict[str, Any]]:
        """member id -> latest consent row, for the members page."""
        rows = self._conn.execute(
            "SELECT c.* FROM consent_records c JOIN (SELECT member_id, MAX(id) AS id"
            " FROM consent_records GROUP BY member_id) l ON c.id = l.id"
        ).fetchall()
        return {r["member_id"]: {**dict(r), "recorded_at": iso(r["recorded_at"])} for r in rows}

    # -- enrollments -------------------------------------------------------------------
    def record_enrollment(self, member_id: str, consent_id: int, count: int, by: str) -> None:
        self._conn.execute(
            "INSERT INTO enrollments (member_id, consent_id, template_count, enrolled_by,"
            " enrolled_at) VALUES (?, ?, ?, ?, ?)",
            (member_id, consent_id, count, by, time.time()),
        )

    def enrollments(self, member_id: str) -> list[dict[str, Any]]:
        rows = self._conn.execute(
            "SELECT consent_id, template_count, enrolled_by, enrolled_at FROM enrollments"
            " WHERE member_id = ? ORDER BY id",
            (member_id,),
        ).fetchall()
        return [{**dict(r), "enrolled_at": iso(r["enrolled_at"])} for r in rows]

    def last_enrollment(self, member_id: str) -> float | None:
        row = self._conn.execute(
            "SELECT MAX(enrolled_at) FROM enrollments WHERE member_id = ?", (member_id,)
        ).fetchone()
        return None if row[0] is None else float(row[0])

    # -- PINs --------------------------------------------------------------------------
    def set_pin(self, member_id: str, pin_hash: str, by: str) -> None:
        self._conn.execute(
            "INSERT INTO door_pins (member_id, pin_hash, set_by, set_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (member_id) DO UPDATE SET pin_hash = excluded.pin_hash,"
            " set_by = excluded.set_by, set_at = excluded.set_at",
            (member_id, pin_hash, by, time.time()),
        )

    def clear_pin(self, member_id: str) -> None:
        self._conn.execute("DELETE FROM door_pins WHERE member_id = ?", (member_id,))

    def pin_hash(self, member_id: str) -> str | None:
        row = self._conn.execute(
            "SELECT pin_hash FROM door_pins WHERE member_id = ?", (member_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def pin_info(self, member_id: str) -> dict[str, Any] | None:
        row = self._conn.execute(
            "SELECT set_by, set_at FROM door_pins WHERE member_id = ?", (member_id,)
        ).fetchone()
        return None if row is None else {"set_by": row[0], "set_at": iso(row[1])}

    def pin_locked_until(self, keys: list[str]) -> float:
        marks = ",".join("?" * len(keys))
        row = self._conn.execute(
            f"SELECT MAX(locked_until) FROM pin_failures WHERE key IN ({marks})", keys
        ).fetchone()
        return float(row[0] or 0.0)

    def pin_failure(self, keys: list[str], throttle: Throttle) -> None:
        now = time.time()
        for key in keys:
            row = self._conn.execute(
                "SELECT failures, first_failure FROM pin_failures WHERE key = ?", (key,)
            ).fetchone()
            failures, first = (0, None) if row is None else (int(row[0]), float(row[1]))
            counted = throttle.failure(failures, first, now)
            self._conn.execute(
                "INSERT INTO pin_failures (key, failures, first_failure, locked_until)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET failures ="
                " excluded.failures, first_failure = excluded.first_failure,"
                " locked_until = excluded.locked_until",
                (key, counted.failures, counted.first_failure, counted.locked_until),
            )

    def pin_success(self, key: str) -> None:
        self._conn.execute("DELETE FROM pin_failures WHERE key = ?", (key,))


def _event(r: sqlite3.Row) -> DoorEvent:
    return DoorEvent(
        method=r["method"],
        decision=r["decision"],
        reason=r["reason"],
        member_id=r["member_id"],
        actor=r["actor"],
        distance=r["distance"],
        margin=r["margin"],
        liveness=None if r["liveness"] is None else json.loads(r["liveness"]),
        latency_ms=None if r["latency_ms"] is None else json.loads(r["latency_ms"]),
        lock_result=r["lock_result"],
        security=None if r["security"] is None else json.loads(r["security"]),
        ts=r["ts"],
        id=r["id"],
    )
