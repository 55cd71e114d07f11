"""Who is calling: member bearer tokens, staff accounts, edge-node credentials.

Passwords are argon2 hashes; bearer tokens and node secrets are random and
stored as SHA-256 digests (they are long and random, so a fast hash is
enough and lookups stay indexable).  All functions are synchronous: the
server calls them from its thread pool (argon2 is deliberately slow).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from edge.migrations import migrate
from edge.passwords import Passwords
from edge.shop.db import Database, PostgresDatabase, Row, SqliteDatabase, Tx
from edge.shop.errors import Conflict, ShopError, ValidationFailed
from edge.shop.schema import migrate_postgres
from sync import sites

Role = Literal["staff", "manager", "admin"]
ROLE_RANK: dict[str, int] = {"staff": 1, "manager": 2, "admin": 3}
STAFF_TOKEN_TTL = timedelta(hours=12)

_STEPS = [
    """
CREATE TABLE staff_accounts (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('staff', 'manager', 'admin')),
    active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at TEXT NOT NULL
);
CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('member', 'staff')),
    subject TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT
);
CREATE TABLE edge_nodes (
    node_id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at TEXT NOT NULL
);
""",
    # Site-bound staff (docs/cloud.md "Staff of a site"): NULL = the chain's staff.
    "ALTER TABLE staff_accounts ADD COLUMN site TEXT;",
]

_passwords = Passwords()


class Unauthenticated(ShopError):
    """No credentials, or credentials that do not check out (HTTP 401)."""

    code = "unauthenticated"
    http_status = 401


@dataclass(frozen=True)
class Principal:
    kind: Literal["member", "staff", "node"]
    subject: str  # member id, staff account id or node id
    role: str | None = None  # staff role
    site: str | None = None  # staff bound to one site; None: the chain's staff

    @property
    def site_scope(self) -> str | None:
        """The one site this caller's staff work is limited to (None: not limited)."""
        return self.site if self.kind == "staff" else None

    def has_role(self, needed: str) -> bool:
        return self.kind == "staff" and ROLE_RANK.get(self.role or "", 0) >= ROLE_RANK[needed]

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.subject}"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _node_hash(secret: str) -> str:
    """A node secret is 256 random bits (``secrets.token_urlsafe(32)``), not a
    password: nothing can guess it, so a slow password hash adds no safety and
    would cost tens of ms and 64 MiB on every sync request of every node.
    Stored as SHA-256 like the bearer tokens, compared in constant time."""
    return "sha256:" + _digest(secret)


def _now() -> datetime:
    return datetime.now(UTC)


def _principal(row: Row | None) -> Principal:
    """Who a bearer token's row (``Auth._TOKEN_SQL``) says is calling."""
    if row is None:
        raise Unauthenticated("unknown or revoked token")
    if row["expires_at"] and datetime.fromisoformat(row["expires_at"]) < _now():
        raise Unauthenticated("token expired")
    if row["kind"] == "member":
        return Principal("member", row["subject"])
    if not row["active"]:  # no such account (NULL) or disabled (0)
        raise Unauthenticated("staff account disabled")
    return Principal("staff", row["subject"], row["role"], row["site"])


class Auth:
    def __init__(self, db: Database) -> None:
        self.db = db

    def migrate(self) -> int:
        if isinstance(self.db, SqliteDatabase):
            return migrate(self.db.connection(), "cloud_auth", _STEPS)
        if isinstance(self.db, PostgresDatabase):
            return migrate_postgres(self.db, "cloud_auth", _STEPS)
        raise TypeError(type(self.db).__name__)

    # ---- staff --------------------------------------------------------------
    def create_staff(
        self, email: str, name: str, password: str, role: Role, site: str | None = None
    ) -> str:
        """``site`` binds the account to one site's orders, requests and stock; the
        chain admin is never bound."""
        _admin_is_the_chains(role, site)
        staff_id = secrets.token_hex(16)
        hashed = _passwords.hash(password)
        with self.db.write() as tx:
            _site_exists(tx, site)
            tx.execute(
                "INSERT INTO staff_accounts (id, email, name, password_hash, role, created_at,"
                " site) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (staff_id, email.lower(), name, hashed, role, _now().isoformat(), site),
            )
        return staff_id

    def reactivate_staff(
        self, staff_id: str, name: str, password: str, role: Role, site: str | None = None
    ) -> str:
        """A removed account taken over by a new ``staff add`` of its email."""
        _admin_is_the_chains(role, site)
        hashed = _passwords.hash(password)
        with self.db.write() as tx:
            _site_exists(tx, site)
            tx.execute(
                "UPDATE staff_accounts SET name = ?, password_hash = ?, role = ?, site = ?,"
                " active = 1 WHERE id = ? AND active = 0",
                (name, hashed, role, site, staff_id),
            )
        return staff_id

    def login(self, email: str, password: str) -> tuple[str, str, datetime]:
        """Check a staff password; returns (token, role, expires_at)."""
        with self.db.read() as tx:
            row = tx.one(
                "SELECT id, password_hash, role FROM staff_accounts WHERE email = ? AND active = 1",
                (email.lower(),),
            )
        # An unknown email costs the same work as a wrong password.
        if not _passwords.verify(None if row is None else row["password_hash"], password):
            raise Unauthenticated("wrong email or password")
        assert row is not None
        expires = _now() + STAFF_TOKEN_TTL
        token = self._issue("staff", row["id"], expires)
        return token, str(row["role"]), expires

    # ---- members ------------------------------------------------------------
    def issue_member_token(self, member_id: str, token: str | None = None) -> str:
        """A bearer token for the member app (``token`` fixes it, for the demo)."""
        return self._issue("member", member_id, None, token)

    def _issue(
        self, kind: str, subject: str, expires: datetime | None, token: str | None = None
    ) -> str:
        token = token or secrets.token_urlsafe(32)
        with self.db.write() as tx:
            tx.execute(
                "INSERT INTO api_tokens (token_hash, kind, subject, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    _digest(token),
                    kind,
                    subject,
                    _now().isoformat(),
                    None if expires is None else expires.isoformat(),
                ),
            )
        return token

    _TOKEN_SQL = (
        "SELECT t.token_hash, t.kind, t.subject, t.expires_at, s.role, s.site, s.active"
        " FROM api_tokens t LEFT JOIN staff_accounts s"
        " ON t.kind = 'staff' AND s.id = t.subject WHERE t.token_hash"
    )

    def authenticate(self, token: str) -> Principal:
        """One statement (no transaction round trips): every request pays for it."""
        row = self.db.query_one(f"{self._TOKEN_SQL} = ?", (_digest(token),))
        return _principal(row)

    def authenticate_many(self, tokens: list[str]) -> list[Principal | ShopError]:
        """``authenticate`` for the tokens of concurrent requests, in one statement: each
        its own answer, read when asked (a revoked token or disabled account is refused
        by the next request, as alone)."""
        digests = [_digest(token) for token in tokens]
        if self.db.dialect != "postgres":
            rows = {d: self.db.query_one(f"{self._TOKEN_SQL} = ?", (d,)) for d in digests}
        else:
            found = self.db.query_all(f"{self._TOKEN_SQL} = ANY(%b)", (sorted(set(digests)),))
            rows = {r["token_hash"]: r for r in found}
        out: list[Principal | ShopError] = []
        for d in digests:
            try:
                out.append(_principal(rows.get(d)))
            except ShopError as exc:
                out.append(exc)
        return out

    # ---- edge nodes ---------------------------------------------------------
    def register_node(self, node_id: str, site: str | None = None, actor: str = "cli") -> str:
        """Create a node credential (of ``site``); the secret is shown once and stored hashed."""
        secret = secrets.token_urlsafe(32)
        with self.db.write() as tx:
            if tx.one("SELECT node_id FROM edge_nodes WHERE node_id = ?", (node_id,)):
                raise Conflict(f"node {node_id!r} exists", field="node_id")
            tx.execute(
                "INSERT INTO edge_nodes (node_id, secret_hash, created_at) VALUES (?, ?, ?)",
                (node_id, _node_hash(secret), _now().isoformat()),
            )
            if site is not None:
                sites.bind_node(tx, node_id, site)
                sites.audit(tx, actor, "node.add", node_id, {"site": site})
        return secret

    def authenticate_node(self, node_id: str, secret: str) -> Principal:
        """Every sync request: a SHA-256 check, not a password hash (see _node_hash)."""
        # One statement outside a transaction: every sync request pays for it.
        row = self.db.query_one(
            "SELECT secret_hash FROM edge_nodes WHERE node_id = ? AND active = 1", (node_id,)
        )
        stored = None if row is None else str(row["secret_hash"])
        if stored is not None and stored.startswith("$argon2"):
            # A credential made before node secrets were SHA-256: checked the
            # old way once, then stored the new way.
            if not _passwords.verify(stored, secret):
                raise Unauthenticated("bad node credentials")
            with self.db.write() as tx:
                tx.execute(
                    "UPDATE edge_nodes SET secret_hash = ? WHERE node_id = ? AND secret_hash = ?",
                    (_node_hash(secret), node_id, stored),
                )
            return Principal("node", node_id)
        given = _node_hash(secret)
        if stored is None or not hmac.compare_digest(given.encode(), stored.encode()):
            raise Unauthenticated("bad node credentials")
        return Principal("node", node_id)


def _admin_is_the_chains(role: str, site: str | None) -> None:
    if site is not None and role == "admin":
        raise ValidationFailed("site", "an admin is the chain's; bind staff or managers")


def _site_exists(tx: Tx, site: str | None) -> None:
    if site is not None and tx.one("SELECT id FROM sites WHERE id = ?", (site,)) is None:
        raise ValidationFailed("site", f"no such site {site!r}")
