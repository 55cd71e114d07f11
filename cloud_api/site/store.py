"""What only the website keeps: member passwords, sessions and carts, login
failures, deletion requests and the sites' contact facts.

Cloud-only tables in their own migration component (``cloud_site``), so the
shop's synced schema is untouched: a member password never reaches an edge.
The login-failure table has the edge API's shape, so the throttle's own SQL
(``edge.api.db``) runs on it unchanged.  Every function is synchronous (one
transaction): the handlers call them from the app's thread pool.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from edge.migrations import migrate
from edge.shop.db import Database, PostgresDatabase, SqliteDatabase, Tx
from edge.shop.schema import migrate_postgres
from sync import sites

COMPONENT = "cloud_site"
_SUBST = {
    "sqlite": {"serial_pk": "INTEGER PRIMARY KEY AUTOINCREMENT", "double": "REAL"},
    "postgres": {"serial_pk": "BIGSERIAL PRIMARY KEY", "double": "DOUBLE PRECISION"},
}
_STEPS = (
    """
CREATE TABLE member_credentials (
    member_id TEXT PRIMARY KEY REFERENCES members (id),
    password_hash TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE site_sessions (
    token_hash TEXT PRIMARY KEY,
    member_id TEXT NOT NULL REFERENCES members (id),
    cart TEXT NOT NULL DEFAULT '{{}}',
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX site_sessions_member ON site_sessions (member_id);
CREATE TABLE api_login_failures (
    key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    locked_until {double} NOT NULL,
    last_failure {double} NOT NULL
);
CREATE TABLE deletion_requests (
    id {serial_pk},
    member_id TEXT NOT NULL REFERENCES members (id),
    email TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'requested' CHECK (status IN ('requested', 'done')),
    handled_by TEXT,
    handled_at TEXT
);
CREATE TABLE site_contacts (
    site_id TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    phone TEXT NOT NULL
);
""",
)


def migrate_site(db: Database) -> int:
    if isinstance(db, SqliteDatabase):
        steps = [s.format(**_SUBST["sqlite"]) for s in _STEPS]
        return migrate(db.connection(), COMPONENT, steps)
    if isinstance(db, PostgresDatabase):
        return migrate_postgres(db, COMPONENT, [s.format(**_SUBST["postgres"]) for s in _STEPS])
    raise TypeError(type(db).__name__)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


# ---- passwords ----------------------------------------------------------------
def password_hash(db: Database, member_id: str) -> str | None:
    with db.read() as tx:
        value = tx.scalar(
            "SELECT password_hash FROM member_credentials WHERE member_id = ?", (member_id,)
        )
    return None if value is None else str(value)


def set_password_hash(db: Database, member_id: str, hashed: str, *, actor: str = "demo") -> None:
    with db.write() as tx:
        tx.execute(
            "INSERT INTO member_credentials (member_id, password_hash, updated_at)"
            " VALUES (?, ?, ?) ON CONFLICT (member_id) DO UPDATE SET"
            " password_hash = excluded.password_hash, updated_at = excluded.updated_at",
            (member_id, hashed, _now().isoformat()),
        )
        sites.audit(tx, actor, "member.website_password", member_id, {})


# ---- sessions and carts ---------------------------------------------------------
@dataclass(frozen=True)
class Session:
    token: str
    member_id: str
    cart: dict[str, int]


def new_session(db: Database, member_id: str, ttl: timedelta) -> str:
    token = secrets.token_urlsafe(32)
    now = _now()
    with db.write() as tx:
        tx.execute(
            "INSERT INTO site_sessions (token_hash, member_id, cart, created_at, expires_at)"
            " VALUES (?, ?, '{}', ?, ?)",
            (digest(token), member_id, now.isoformat(), (now + ttl).isoformat()),
        )
    return token


def find_session(db: Database, token: str) -> Session | None:
    with db.read() as tx:
        row = tx.one(
            "SELECT member_id, cart, expires_at FROM site_sessions WHERE token_hash = ?",
            (digest(token),),
        )
    if row is None or datetime.fromisoformat(row["expires_at"]) < _now():
        return None
    return Session(token, str(row["member_id"]), dict(json.loads(row["cart"])))


def end_session(db: Database, token: str) -> None:
    with db.write() as tx:
        tx.execute("DELETE FROM site_sessions WHERE token_hash = ?", (digest(token),))


def save_cart(db: Database, token: str, cart: dict[str, int]) -> None:
    with db.write() as tx:
        tx.execute(
            "UPDATE site_sessions SET cart = ? WHERE token_hash = ?",
            (json.dumps(cart, sort_keys=True), digest(token)),
        )


class TxConnection:
    """Just enough of ``sqlite3.Connection`` for the throttle's SQL in
    ``edge.api.db`` (``execute`` → ``fetchone``/``fetchall``/``rowcount``),
    over a shop transaction, so it runs on SQLite and PostgreSQL alike."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx
        self._rows: list[tuple[Any, ...]] = []
        self.rowcount = 0

    def execute(self, sql: str, params: Any = ()) -> TxConnection:
        if sql.lstrip().upper().startswith("SELECT"):
            self._rows = [tuple(r.values()) for r in self._tx.all(sql, tuple(params))]
            self.rowcount = -1
        else:
            self._rows = []
            self.rowcount = self._tx.execute(sql, tuple(params))
        return self

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None


# ---- data rights ------------------------------------------------------------------
def request_deletion(db: Database, member_id: str, email: str) -> None:
    with db.write() as tx:
        open_request = tx.one(
            "SELECT id FROM deletion_requests WHERE member_id = ? AND status = 'requested'",
            (member_id,),
        )
        if open_request is None:
            tx.execute(
                "INSERT INTO deletion_requests (member_id, email, requested_at) VALUES (?, ?, ?)",
                (member_id, email, _now().isoformat()),
            )


def deletion_requests(db: Database, member_id: str) -> list[dict[str, Any]]:
    with db.read() as tx:
        rows: list[dict[str, Any]] = tx.all(
            "SELECT requested_at, status, handled_at FROM deletion_requests"
            " WHERE member_id = ? ORDER BY id",
            (member_id,),
        )
    return rows


def open_deletion_requests(db: Database) -> list[dict[str, Any]]:
    """Requests staff have still to carry out, oldest first."""
    with db.read() as tx:
        rows: list[dict[str, Any]] = tx.all(
            "SELECT d.requested_at, d.email, m.name, m.id AS member_id FROM deletion_requests d"
            " JOIN members m ON m.id = d.member_id WHERE d.status = 'requested' ORDER BY d.id"
        )
    return rows


def complete_deletion(db: Database, member_id: str, *, actor: str) -> int:
    """The website's part of a carried-out deletion: the password, every
    session and member token go, open requests are marked done (audited).
    Returns how many requests were open."""
    with db.write() as tx:
        tx.execute("DELETE FROM member_credentials WHERE member_id = ?", (member_id,))
        tx.execute("DELETE FROM site_sessions WHERE member_id = ?", (member_id,))
        tx.execute("DELETE FROM api_tokens WHERE kind = 'member' AND subject = ?", (member_id,))
        opened = tx.all(
            "SELECT id FROM deletion_requests WHERE member_id = ? AND status = 'requested'",
            (member_id,),
        )
        tx.execute(
            "UPDATE deletion_requests SET status = 'done', handled_by = ?, handled_at = ?"
            " WHERE member_id = ? AND status = 'requested'",
            (actor, _now().isoformat(), member_id),
        )
        sites.audit(tx, actor, "member.erase", member_id, {"requests": len(opened)})
    return len(opened)


def consent_of(db: Database, member_id: str) -> dict[str, Any] | None:
    """The member's face-access consent as the cloud recorded it (sync's table)."""
    with db.read() as tx:
        row = tx.one(
            "SELECT biometric, updated_at FROM member_consent WHERE member_id = ?", (member_id,)
        )
    return None if row is None else {"biometric": bool(row["biometric"]),
                                      "updated_at": row["updated_at"]}  # fmt: skip


def cloud_records(db: Database, member_id: str) -> dict[str, Any]:
    """Everything else the cloud keeps about a member, for the data export."""
    with db.read() as tx:
        sessions = tx.all(
            "SELECT created_at, expires_at FROM site_sessions WHERE member_id = ?"
            " ORDER BY created_at",
            (member_id,),
        )
        password = tx.one(
            "SELECT updated_at FROM member_credentials WHERE member_id = ?", (member_id,)
        )
        attendance = tx.all(
            "SELECT door, direction, at FROM attendance_events WHERE member_id = ? ORDER BY at",
            (member_id,),
        )
        tokens = tx.all(
            "SELECT created_at, expires_at FROM api_tokens WHERE kind = 'member' AND subject = ?",
            (member_id,),
        )
    return {
        "website_password": None if password is None else {"set_at": password["updated_at"]},
        "website_sessions": sessions,
        "app_tokens": tokens,
        "attendance": attendance,
    }


# ---- sites' contact facts -----------------------------------------------------------
def set_contact(
    db: Database, site_id: str, address: str, phone: str, *, actor: str = "demo"
) -> None:
    with db.write() as tx:
        tx.execute(
            "INSERT INTO site_contacts (site_id, address, phone) VALUES (?, ?, ?)"
            " ON CONFLICT (site_id) DO UPDATE SET address = excluded.address,"
            " phone = excluded.phone",
            (site_id, address, phone),
        )
        sites.audit(tx, actor, "site.contact", site_id, {"address": address, "phone": phone})


def contacts(db: Database) -> dict[str, dict[str, str]]:
    with db.read() as tx:
        rows = tx.all("SELECT site_id, address, phone FROM site_contacts ORDER BY site_id")
    return {r["site_id"]: {"address": r["address"], "phone": r["phone"]} for r in rows}
