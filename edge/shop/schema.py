"""Shop schema, one SQL text per step with small per-dialect substitutions.

Money is integer cents (exact on both engines, sums in SQL stay exact);
dates and timestamps are ISO-8601 text in UTC so a row reads the same on the
edge and in the cloud, which keeps sync payloads identical.  SQLite records
steps through ``edge.migrations.migrate``; PostgreSQL keeps the same
versioned scheme in its own ``schema_migrations`` table.
"""

from __future__ import annotations

from datetime import UTC, datetime

from edge.migrations import MigrationError, migrate
from edge.shop.db import Database, PostgresDatabase, SqliteDatabase

COMPONENT = "shop"

_SUBST = {
    "sqlite": {"serial_pk": "INTEGER PRIMARY KEY AUTOINCREMENT", "bigint": "INTEGER"},
    "postgres": {"serial_pk": "BIGSERIAL PRIMARY KEY", "bigint": "BIGINT"},
}

_STEP_1 = """
CREATE TABLE products (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    category TEXT NOT NULL
        CHECK (category IN ('skincare', 'wellness_tech', 'accessories', 'supplements')),
    description TEXT NOT NULL DEFAULT '',
    short_description TEXT NOT NULL DEFAULT '' CHECK (length(short_description) <= 300),
    price_cents {bigint} NOT NULL CHECK (price_cents >= 0),
    member_price_cents {bigint} CHECK (member_price_cents >= 0),
    stock INTEGER NOT NULL DEFAULT 0 CHECK (stock >= 0),
    low_stock_threshold INTEGER NOT NULL DEFAULT 5 CHECK (low_stock_threshold >= 0),
    image_url TEXT,
    gallery TEXT NOT NULL DEFAULT '[]',
    active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    featured INTEGER NOT NULL DEFAULT 0 CHECK (featured IN (0, 1)),
    accounting_item_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CHECK (member_price_cents IS NULL OR member_price_cents < price_cents)
);
CREATE INDEX products_catalogue ON products (active, category, name);

CREATE TABLE stock_movements (
    id {serial_pk},
    product_id TEXT NOT NULL REFERENCES products (id),
    kind TEXT NOT NULL CHECK (kind IN ('sale', 'cancellation', 'restock', 'adjustment')),
    delta INTEGER NOT NULL CHECK (delta <> 0),
    order_id TEXT,
    actor TEXT NOT NULL,
    note TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX stock_movements_product ON stock_movements (product_id);

CREATE TABLE members (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    phone TEXT NOT NULL,
    date_of_birth TEXT NOT NULL,
    tier TEXT NOT NULL CHECK (tier IN ('basic', 'premium', 'unlimited')),
    active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE number_blocks (
    kind TEXT NOT NULL CHECK (kind IN ('PO', 'CR')),
    year INTEGER NOT NULL,
    block INTEGER NOT NULL CHECK (block >= 0 AND block < 1000),
    node TEXT NOT NULL,
    next_offset INTEGER NOT NULL CHECK (next_offset >= 0 AND next_offset <= 1000),
    PRIMARY KEY (kind, year, block)
);

CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    number TEXT NOT NULL UNIQUE,
    member_id TEXT NOT NULL REFERENCES members (id),
    status TEXT NOT NULL
        CHECK (status IN ('pending', 'processing', 'ready', 'completed', 'cancelled')),
    pickup_date TEXT,
    booking_ref TEXT,
    subtotal_cents {bigint} NOT NULL CHECK (subtotal_cents >= 0),
    tax_cents {bigint} NOT NULL CHECK (tax_cents >= 0),
    total_cents {bigint} NOT NULL CHECK (total_cents = subtotal_cents + tax_cents),
    tax_rate TEXT NOT NULL,
    payment_ref TEXT,
    paid_at TEXT,
    customer_notes TEXT NOT NULL DEFAULT '',
    staff_notes TEXT NOT NULL DEFAULT '',
    accounting_synced INTEGER NOT NULL DEFAULT 0 CHECK (accounting_synced IN (0, 1)),
    invoice_id TEXT,
    accounting_error TEXT,
    origin_node TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX orders_member ON orders (member_id, created_at);

CREATE TABLE order_items (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (id),
    position INTEGER NOT NULL,
    product_id TEXT NOT NULL REFERENCES products (id),
    product_name TEXT NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity >= 1),
    unit_price_cents {bigint} NOT NULL CHECK (unit_price_cents >= 0),
    line_total_cents {bigint} NOT NULL CHECK (line_total_cents = unit_price_cents * quantity),
    note TEXT CHECK (note IS NULL OR length(note) <= 255),
    UNIQUE (order_id, position)
);

CREATE TABLE concierge_requests (
    id TEXT PRIMARY KEY,
    number TEXT NOT NULL UNIQUE,
    member_id TEXT NOT NULL REFERENCES members (id),
    request_type TEXT NOT NULL CHECK (request_type IN ('premium_alcohol', 'fresh_flowers',
        'gourmet_food', 'jewelry_accessories', 'luxury_items', 'gift_items', 'other')),
    title TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description TEXT NOT NULL,
    product_link TEXT,
    budget_min_cents {bigint} NOT NULL CHECK (budget_min_cents >= 0),
    budget_max_cents {bigint} NOT NULL CHECK (budget_max_cents >= budget_min_cents),
    actual_cost_cents {bigint} CHECK (actual_cost_cents >= 0),
    preferred_pickup_date TEXT NOT NULL,
    booking_ref TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'processing', 'ready',
        'completed', 'declined', 'cancelled')),
    decline_reason TEXT,
    staff_notes TEXT NOT NULL DEFAULT '',
    age_verified_at TEXT,
    age_verified_by TEXT,
    submitted_at TEXT NOT NULL,
    reviewed_at TEXT,
    completed_at TEXT,
    updated_at TEXT NOT NULL,
    origin_node TEXT NOT NULL,
    CHECK (status <> 'declined' OR decline_reason IS NOT NULL)
);
CREATE INDEX concierge_member ON concierge_requests (member_id, submitted_at);

CREATE TABLE outbox (
    seq {serial_pk},
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    op TEXT NOT NULL,
    payload TEXT NOT NULL,
    node TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""

# Step 2: sites (docs/cloud.md "Sites").  An order or request names the site it
# is picked up at; a multi-site cloud keeps each site's stock in ``site_stock``
# (its ledger rows carry the site), ``products.stock`` stays the stock of a
# one-site shop (every edge) and the chain's unsited stock in the cloud.
_STEP_2 = """
ALTER TABLE orders ADD COLUMN site TEXT;
ALTER TABLE concierge_requests ADD COLUMN site TEXT;
ALTER TABLE stock_movements ADD COLUMN site TEXT;
ALTER TABLE outbox ADD COLUMN site TEXT;
CREATE TABLE site_stock (
    site TEXT NOT NULL,
    product_id TEXT NOT NULL REFERENCES products (id),
    stock INTEGER NOT NULL DEFAULT 0 CHECK (stock >= 0),
    PRIMARY KEY (site, product_id)
);
CREATE INDEX orders_site ON orders (site, created_at);
CREATE INDEX concierge_site ON concierge_requests (site, submitted_at);
"""

# Step 3: units owed (docs/sync.md "Oversell").  Stock sold on two nodes while
# apart can exceed what was there; the ledger cannot go below zero, so the
# cloud's ``oversell hold`` adjustment (and, on an edge, a remote sale it holds)
# is counted in ``owed`` as well: what is really there is ``stock - owed``,
# and that, never below zero, is what is shown and sold.
_STEP_3 = """
ALTER TABLE products ADD COLUMN owed INTEGER NOT NULL DEFAULT 0 CHECK (owed >= 0);
ALTER TABLE site_stock ADD COLUMN owed INTEGER NOT NULL DEFAULT 0 CHECK (owed >= 0);
UPDATE products SET owed = COALESCE((SELECT SUM(m.delta) FROM stock_movements m
    WHERE m.product_id = products.id AND m.site IS NULL AND m.kind = 'adjustment'
    AND m.note LIKE 'oversell hold:%'), 0);
UPDATE site_stock SET owed = COALESCE((SELECT SUM(m.delta) FROM stock_movements m
    WHERE m.product_id = site_stock.product_id AND m.site = site_stock.site
    AND m.kind = 'adjustment' AND m.note LIKE 'oversell hold:%'), 0);
"""

STEPS_TEMPLATE: tuple[str, ...] = (_STEP_1, _STEP_2, _STEP_3)


def steps_for(dialect: str) -> list[str]:
    subst = _SUBST[dialect]
    return [step.format(**subst) for step in STEPS_TEMPLATE]


def migrate_database(db: Database) -> int:
    """Bring ``db`` to the newest shop schema; returns the version."""
    if isinstance(db, SqliteDatabase):
        return migrate(db.connection(), COMPONENT, steps_for("sqlite"))
    if isinstance(db, PostgresDatabase):
        return migrate_postgres(db, COMPONENT, steps_for("postgres"))
    raise TypeError(f"unsupported database {type(db).__name__}")


def migrate_postgres(db: PostgresDatabase, component: str, steps: list[str]) -> int:
    """The PostgreSQL twin of ``edge.migrations.migrate`` (DDL is transactional there)."""
    import psycopg

    with db.connection() as conn, conn.transaction():
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " component TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT NOT NULL,"
            " PRIMARY KEY (component, version))"
        )
    for version in range(1, len(steps) + 1):
        try:
            with db.connection() as conn, conn.transaction():
                # One migrator at a time per database; others wait, then see the row.
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (component,))
                row = conn.execute(
                    "SELECT MAX(version) AS v FROM schema_migrations WHERE component = %s",
                    (component,),
                ).fetchone()
                done = int(row["v"]) if row and row["v"] is not None else 0
                if done > len(steps):
                    raise MigrationError(
                        f"{component}: database is at version {done}, newer than this "
                        f"program ({len(steps)})"
                    )
                if done >= version:
                    continue
                conn.execute(steps[version - 1])
                conn.execute(
                    "INSERT INTO schema_migrations (component, version, applied_at)"
                    " VALUES (%s, %s, %s)",
                    (component, version, datetime.now(UTC).isoformat()),
                )
        except psycopg.Error as exc:
            raise MigrationError(f"{component} migration {version} failed: {exc}") from exc
    return len(steps)
