"""The LAN API's tables in the edge database, and the queries on them.

Every function here is synchronous and takes the store's connection: callers
run them on the database thread with ``Store.call``.  Only hashes of tokens
and pairing codes are stored, so a copy of the database grants no access.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edge.ops.durability import durable_write
from edge.throttle import Throttle

API_MIGRATIONS = [
    """
    CREATE TABLE api_users (
        username TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('staff', 'manager', 'admin')),
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    );
    CREATE TABLE api_sessions (
        token_hash TEXT PRIMARY KEY,
        username TEXT NOT NULL REFERENCES api_users (username) ON DELETE CASCADE,
        csrf_hash TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE TABLE api_tablets (
        tablet_id TEXT PRIMARY KEY,
        room_id TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        name TEXT,
        paired_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );
    CREATE TABLE api_pairing_codes (
        code_hash TEXT PRIMARY KEY,
        room_id TEXT NOT NULL,
        created_by TEXT NOT NULL,
        expires_at REAL NOT NULL,
        used_at REAL
    );
    CREATE TABLE api_audit (
        id INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        result TEXT NOT NULL,
        detail TEXT,
        client_ip TEXT
    );
    CREATE TABLE api_login_failures (
        key TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        locked_until REAL NOT NULL,
        last_failure REAL NOT NULL
    );
    """,
]

ROLES = ("staff", "manager", "admin")


def role_rank(role: str) -> int:
    return ROLES.index(role)


def digest(secret: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough (no salt or stretching).
    return hashlib.sha256(secret.encode()).hexdigest()


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True, slots=True)
class User:
    username: str
    password_hash: str
    role: str
    disabled: bool

    def public(self) -> dict[str, Any]:
        return {"username": self.username, "role": self.role, "disabled": self.disabled}


def _rows(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    cur = conn.execute(sql, args)
    names = [c[0] for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur]


# -- users ---------------------------------------------------------------------------
def count_users(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM api_users").fetchone()[0])


def get_user(conn: sqlite3.Connection, username: str) -> User | None:
    row = conn.execute(
        "SELECT username, password_hash, role, disabled FROM api_users WHERE username = ?",
        (username,),
    ).fetchone()
    return None if row is None else User(row[0], row[1], row[2], bool(row[3]))


def list_users(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = _rows(conn, "SELECT username, role, disabled, created_at FROM api_users ORDER BY 1")
    return [{**r, "disabled": bool(r["disabled"])} for r in rows]


def insert_user(conn: sqlite3.Connection, username: str, password_hash: str, role: str) -> bool:
    """False when the username is taken."""
    try:
        conn.execute(
            "INSERT INTO api_users (username, password_hash, role, created_at) VALUES (?,?,?,?)",
            (username, password_hash, role, now_iso()),
        )
    except sqlite3.IntegrityError:
        return False
    return True


def update_user(
    conn: sqlite3.Connection,
    username: str,
    *,
    password_hash: str | None = None,
    role: str | None = None,
    disabled: bool | None = None,
) -> bool:
    sets: list[str] = []
    args: list[Any] = []
    for column, value in (("password_hash", password_hash), ("role", role), ("disabled", disabled)):
        if value is not None:
            sets.append(f"{column} = ?")
            args.append(int(value) if isinstance(value, bool) else value)
    if not sets:
        return get_user(conn, username) is not None
    with conn:
        conn.execute("BEGIN")
        cur = conn.execute(
            f"UPDATE api_users SET {', '.join(sets)} WHERE username = ?", (*args, username)
        )
        if password_hash is not None or disabled:
            # A new password or a disabled account ends every open session.
            conn.execute("DELETE FROM api_sessions WHERE username = ?", (username,))
    return cur.rowcount > 0


def delete_user(conn: sqlite3.Connection, username: str) -> bool:
    return conn.execute("DELETE FROM api_users WHERE username = ?", (username,)).rowcount > 0


def count_admins(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT COUNT(*) FROM api_users WHERE role = 'admin' AND disabled = 0")
    return int(row.fetchone()[0])


# -- sessions ------------------------------------------------------------------------
def insert_session(
    conn: sqlite3.Connection, token_hash: str, username: str, csrf_hash: str, now: float, ttl: float
) -> None:
    conn.execute("DELETE FROM api_sessions WHERE expires_at < ?", (now,))
    conn.execute(
        "INSERT INTO api_sessions (token_hash, username, csrf_hash, created_at, expires_at)"
        " VALUES (?,?,?,?,?)",
        (token_hash, username, csrf_hash, now, now + ttl),
    )


def session_user(
    conn: sqlite3.Connection, token_hash: str, now: float
) -> tuple[User, str, float] | None:
    """(user, csrf hash, expiry) of a live session of an enabled user."""
    row = conn.execute(
        "SELECT s.username, s.csrf_hash, s.expires_at FROM api_sessions s"
        " WHERE s.token_hash = ? AND s.expires_at > ?",
        (token_hash, now),
    ).fetchone()
    if row is None:
        return None
    user = get_user(conn, row[0])
    if user is None or user.disabled:
        return None
    return user, row[1], row[2]


def delete_session(conn: sqlite3.Connection, token_hash: str) -> None:
    conn.execute("DELETE FROM api_sessions WHERE token_hash = ?", (token_hash,))


# -- tablets and pairing -------------------------------------------------------------
def insert_pairing_code(
    conn: sqlite3.Connection, code_hash: str, room_id: str, by: str, expires_at: float
) -> None:
    conn.execute(
        "INSERT INTO api_pairing_codes (code_hash, room_id, created_by, expires_at)"
        " VALUES (?,?,?,?)",
        (code_hash, room_id, by, expires_at),
    )


def redeem_pairing_code(
    conn: sqlite3.Connection,
    code_hash: str,
    now: float,
    tablet_id: str,
    token_hash: str,
    name: str | None,
) -> str | None:
    """Use a code once and record the tablet; the room id, or None if invalid/used/expired."""
    with conn:
        conn.execute("BEGIN IMMEDIATE")  # one writer: two tablets cannot share a code
        row = conn.execute(
            "SELECT room_id, created_by FROM api_pairing_codes"
            " WHERE code_hash = ? AND used_at IS NULL AND expires_at > ?",
            (code_hash, now),
        ).fetchone()
        if row is None:
            return None
        conn.execute(
            "UPDATE api_pairing_codes SET used_at = ? WHERE code_hash = ?", (now, code_hash)
        )
        conn.execute(
            "INSERT INTO api_tablets (tablet_id, room_id, token_hash, name, paired_by, created_at)"
            " VALUES (?,?,?,?,?,?)",
            (tablet_id, row[0], token_hash, name, row[1], now_iso()),
        )
    return str(row[0])


def tablet_by_token(conn: sqlite3.Connection, token_hash: str) -> tuple[str, str] | None:
    """(tablet id, room id) of a tablet that is not revoked."""
    row = conn.execute(
        "SELECT tablet_id, room_id FROM api_tablets WHERE token_hash = ? AND revoked_at IS NULL",
        (token_hash,),
    ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def list_tablets(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return _rows(
        conn,
        "SELECT tablet_id, room_id, name, paired_by, created_at, revoked_at FROM api_tablets"
        " ORDER BY created_at DESC",
    )


def _durably(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> sqlite3.Cursor:
    """Execute at synchronous=FULL: edge.db is NORMAL, but a revocation or an
    audit row lost to a power cut would bring back a revoked tablet or erase
    the trail.  Inside a caller's transaction its commit decides."""
    if conn.in_transaction:
        return conn.execute(sql, args)
    with durable_write(conn):
        return conn.execute(sql, args)


def revoke_tablet(conn: sqlite3.Connection, tablet_id: str) -> bool:
    cur = _durably(
        conn,
        "UPDATE api_tablets SET revoked_at = ? WHERE tablet_id = ? AND revoked_at IS NULL",
        (now_iso(), tablet_id),
    )
    return cur.rowcount > 0


# -- audit -----------------------------------------------------------------------------
def insert_audit(
    conn: sqlite3.Connection,
    actor: str,
    action: str,
    target: str | None,
    result: str,
    detail: dict[str, Any] | None,
    client_ip: str | None,
) -> None:
    _durably(
        conn,
        "INSERT INTO api_audit (ts, actor, action, target, result, detail, client_ip)"
        " VALUES (?,?,?,?,?,?,?)",
        (
            now_iso(),
            actor,
            action,
            target,
            result,
            json.dumps(detail) if detail else None,
            client_ip,
        ),
    )


def list_audit(conn: sqlite3.Connection, limit: int, action: str | None) -> list[dict[str, Any]]:
    where, args = ("WHERE action = ?", (action,)) if action else ("", ())
    rows = _rows(conn, f"SELECT * FROM api_audit {where} ORDER BY id DESC LIMIT ?", (*args, limit))
    for r in rows:
        r["detail"] = json.loads(r["detail"]) if r["detail"] else None
    return rows


# -- login throttling ------------------------------------------------------------------
def locked_until(conn: sqlite3.Connection, keys: list[str]) -> float:
    marks = ",".join("?" * len(keys))
    row = conn.execute(
        f"SELECT MAX(locked_until) FROM api_login_failures WHERE key IN ({marks})", keys
    ).fetchone()
    return float(row[0] or 0.0)


def failure_state(conn: sqlite3.Connection, keys: list[str]) -> dict[str, tuple[int, float]]:
    """key -> (failures, locked_until) for the keys that have failures."""
    marks = ",".join("?" * len(keys))
    rows = conn.execute(
        f"SELECT key, failures, locked_until FROM api_login_failures WHERE key IN ({marks})",
        keys,
    ).fetchall()
    return {str(k): (int(f), float(u)) for k, f, u in rows}


def record_failure(
    conn: sqlite3.Connection, key: str, now: float, throttle: Throttle
) -> tuple[int, float]:
    """Count one failure as ``throttle`` says; (failures in a row, lockout seconds)."""
    row = conn.execute("SELECT failures FROM api_login_failures WHERE key = ?", (key,)).fetchone()
    counted = throttle.failure(int(row[0]) if row else 0, None, now)
    conn.execute(
        "INSERT INTO api_login_failures (key, failures, locked_until, last_failure)"
        " VALUES (?,?,?,?) ON CONFLICT (key) DO UPDATE SET failures = excluded.failures,"
        " locked_until = excluded.locked_until, last_failure = excluded.last_failure",
        (key, counted.failures, now + counted.lockout_s, now),
    )
    return counted.failures, counted.lockout_s


def clear_failures(conn: sqlite3.Connection, keys: list[str]) -> None:
    marks = ",".join("?" * len(keys))
    conn.execute(f"DELETE FROM api_login_failures WHERE key IN ({marks})", keys)


def forget_old_failures(conn: sqlite3.Connection, before: float) -> int:
    """Drop failure counters idle since ``before`` whose lockout is over (edge.ops.retention)."""
    return conn.execute(
        "DELETE FROM api_login_failures WHERE last_failure < ? AND locked_until < ?",
        (before, before),
    ).rowcount
