"""Tables of the sync engine, the same on the edge (SQLite) and in the cloud.

Edge: ``sync_state`` (cursors, last success/error), ``sync_attention``,
``sync_held_movements`` (remote stock movements waiting for stock),
``sync_member_events`` (member changes not yet handed to the hook),
``member_consent``, ``sync_quarantine`` (own changes the cloud refused for
good), ``sync_incarnations`` (both sides).  Cloud: additionally ``sync_changes`` (the change feed
every edge pulls, keyed by ``(origin, origin_seq)`` for deduplication),
``sync_leases``, ``attendance_events`` and ``sync_compacted``.  Unused tables on a side are empty.
"""

from __future__ import annotations

from edge.migrations import migrate
from edge.shop.db import Database, PostgresDatabase, SqliteDatabase
from edge.shop.schema import migrate_postgres

COMPONENT = "sync"

_SUBST = {
    "sqlite": {"serial_pk": "INTEGER PRIMARY KEY AUTOINCREMENT", "bigint": "INTEGER"},
    "postgres": {"serial_pk": "BIGSERIAL PRIMARY KEY", "bigint": "BIGINT"},
}

_STEP_1 = """
CREATE TABLE sync_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE sync_changes (
    seq {serial_pk},
    origin TEXT NOT NULL,
    origin_seq {bigint} NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    op TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('applied', 'rejected')),
    reason TEXT,
    UNIQUE (origin, origin_seq)
);
CREATE TABLE sync_attention (
    id {serial_pk},
    kind TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    origin TEXT NOT NULL,
    detail TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{{}}',
    created_at TEXT NOT NULL,
    resolved_at TEXT,
    resolved_by TEXT
);
CREATE INDEX sync_attention_open ON sync_attention (resolved_at, id);
CREATE TABLE sync_held_movements (
    id {serial_pk},
    product_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    delta INTEGER NOT NULL,
    order_id TEXT,
    actor TEXT NOT NULL,
    note TEXT,
    origin TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE sync_member_events (
    id {serial_pk},
    member_id TEXT NOT NULL,
    active INTEGER NOT NULL,
    consent INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE member_consent (
    member_id TEXT PRIMARY KEY,
    biometric INTEGER NOT NULL CHECK (biometric IN (0, 1)),
    updated_at TEXT NOT NULL
);
CREATE TABLE sync_leases (
    node TEXT NOT NULL,
    request_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    year INTEGER NOT NULL,
    block INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (node, request_key, kind, year)
);
CREATE TABLE attendance_events (
    id TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    member_id TEXT NOT NULL,
    door TEXT NOT NULL,
    direction TEXT NOT NULL,
    at TEXT NOT NULL,
    received_at TEXT NOT NULL
);
"""

# Step 2: node incarnations (docs/sync.md "Restores and reinstalls").  The
# feed's idempotency key becomes (origin, incarnation, origin_seq); the old
# UNIQUE (origin, origin_seq) must go, which SQLite can only do by a rebuild.
_INCARNATIONS = """
CREATE TABLE sync_incarnations (
    node TEXT NOT NULL,
    incarnation TEXT NOT NULL,
    previous TEXT,
    first_seq {bigint} NOT NULL,
    reason TEXT NOT NULL,
    started_at TEXT NOT NULL,
    PRIMARY KEY (node, incarnation)
);
ALTER TABLE sync_leases ADD COLUMN incarnation TEXT NOT NULL DEFAULT '';
"""
_STEP_2 = {
    "sqlite": _INCARNATIONS
    + """
CREATE TABLE sync_changes_v2 (
    seq {serial_pk},
    origin TEXT NOT NULL,
    incarnation TEXT NOT NULL DEFAULT '',
    origin_seq {bigint} NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    op TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('applied', 'rejected')),
    reason TEXT,
    UNIQUE (origin, incarnation, origin_seq)
);
INSERT INTO sync_changes_v2 (seq, origin, origin_seq, entity, entity_id, op, payload,
    created_at, received_at, status, reason)
    SELECT seq, origin, origin_seq, entity, entity_id, op, payload, created_at, received_at,
    status, reason FROM sync_changes;
DROP TABLE sync_changes;
ALTER TABLE sync_changes_v2 RENAME TO sync_changes;
""",
    "postgres": _INCARNATIONS
    + """
ALTER TABLE sync_changes ADD COLUMN incarnation TEXT NOT NULL DEFAULT '';
ALTER TABLE sync_changes DROP CONSTRAINT sync_changes_origin_origin_seq_key;
ALTER TABLE sync_changes ADD CONSTRAINT sync_changes_key UNIQUE (origin, incarnation, origin_seq);
""",
}

# Step 3: the edge's quarantine of changes the cloud refused for good.
_STEP_3 = """
CREATE TABLE sync_quarantine (
    key TEXT PRIMARY KEY,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    op TEXT NOT NULL,
    payload TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""

# Step 4: sites as tenants of the cloud (sync/sites.py).  A feed row carries
# the site of the node that made it (NULL: chain-wide, e.g. the catalogue).
_STEP_4 = """
CREATE TABLE sites (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    tax_rate TEXT NOT NULL,
    timezone TEXT NOT NULL,
    block_quota INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE site_nodes (
    node_id TEXT PRIMARY KEY,
    site_id TEXT NOT NULL REFERENCES sites (id),
    created_at TEXT NOT NULL
);
CREATE TABLE admin_audit (
    id {serial_pk},
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    at TEXT NOT NULL
);
ALTER TABLE sync_changes ADD COLUMN site TEXT;
"""

# Step 5: which members each site may read (enrolled there, or ordered there).
_STEP_5 = """
CREATE TABLE member_sites (
    member_id TEXT NOT NULL,
    site TEXT NOT NULL REFERENCES sites (id),
    created_at TEXT NOT NULL,
    PRIMARY KEY (member_id, site)
);
CREATE INDEX sync_changes_site ON sync_changes (site, seq);
"""

# Step 6: the site an attention item is of (sync/attention.py), so a site's staff
# see and resolve their own; NULL: the chain's (or an edge's, which has one site).
_STEP_6 = """
ALTER TABLE sync_attention ADD COLUMN site TEXT;
UPDATE sync_attention SET site = (SELECT s.site_id FROM site_nodes s
    WHERE s.node_id = sync_attention.origin);
CREATE INDEX sync_attention_site ON sync_attention (site, resolved_at, id);
"""

# Step 7: feed compaction (sync/compact.py).  Per (origin, incarnation), the
# highest outbox seq whose feed row compaction removed: a retried push of it
# is still a duplicate.  The cloud's own outbox rows it removed inside the
# outbox copier's look-back window, so they are not copied again.
_STEP_7 = """
CREATE TABLE sync_compacted (
    origin TEXT NOT NULL,
    incarnation TEXT NOT NULL,
    upto {bigint} NOT NULL,
    PRIMARY KEY (origin, incarnation)
);
CREATE TABLE sync_compacted_outbox (
    node TEXT NOT NULL,
    seq {bigint} NOT NULL,
    PRIMARY KEY (node, seq)
);
"""

STEPS_TEMPLATE: tuple[str | dict[str, str], ...] = (
    _STEP_1, _STEP_2, _STEP_3, _STEP_4, _STEP_5, _STEP_6, _STEP_7,
)  # fmt: skip


def steps_for(dialect: str) -> list[str]:
    return [
        (step if isinstance(step, str) else step[dialect]).format(**_SUBST[dialect])
        for step in STEPS_TEMPLATE
    ]


def migrate_sync(db: Database) -> int:
    """Bring ``db`` (the shop's database) to the newest sync schema."""
    if isinstance(db, SqliteDatabase):
        return migrate(db.connection(), COMPONENT, steps_for("sqlite"))
    if isinstance(db, PostgresDatabase):
        return migrate_postgres(db, COMPONENT, steps_for("postgres"))
    raise TypeError(f"unsupported database {type(db).__name__}")
