"""Shared setup for the sync tests: a cloud database, edges, comparisons."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from cloud_api.auth import Auth
from edge.shop import PostgresDatabase, Shop, ShopConfig, SqliteDatabase
from edge.shop.db import Database
from edge.shop.testing import PG_DSN, MutableClock, postgres_schema, postgres_unreachable
from sync.config import CloudSyncConfig
from sync.schema import migrate_sync
from sync.sites import SiteBook
from sync.testing import CloudProcess
from tests.conftest import free_port
from tests.parts import missing

T = TypeVar("T")

PRODUCTS = (
    ("serum", "Rose Serum", "skincare", "40.00", 5),
    ("robe", "Spa Robe", "accessories", "90.00", 1),
    ("gua-sha", "Gua Sha", "accessories", "30.00", 20),
)


@dataclass
class Cloud:
    shop: Shop
    auth: Auth
    secrets: dict[str, str]
    members: dict[str, str]


def prepare_cloud(shop: Shop, nodes: tuple[str, ...] = ("edge-1",)) -> Cloud:
    """Schema, node credentials and a little catalogue, written by the domain code."""
    shop.migrate()
    auth = Auth(shop.db)
    auth.migrate()
    migrate_sync(shop.db)
    shop.site_book = SiteBook()  # the cloud's shop, as CloudSync sets it up
    secrets = {n: auth.register_node(n) for n in nodes}
    for slug, name, cat, price, stock in PRODUCTS:
        shop.create_product(
            {"slug": slug, "name": name, "category": cat, "price": price,
             "image_url": f"https://cdn.example.com/{slug}.jpg"},
            initial_stock=stock,
        )  # fmt: skip
    members = {}
    for who, tier in (("ava", "premium"), ("ben", "basic")):
        m = shop.create_member({"name": who.title(), "email": f"{who}@example.com",
                                "phone": "+1 555 123 4567", "date_of_birth": "1985-05-05",
                                "tier": tier})  # fmt: skip
        members[who] = m.id
    return Cloud(shop, auth, secrets, members)


@contextmanager
def _serve(
    db: Database, proc: CloudProcess, nodes: tuple[str, ...], restock: dict[str, int] | None
) -> Iterator[tuple[Cloud, CloudProcess]]:
    """Prepare ``db`` through the domain code, then serve it by the real cloud process."""
    try:
        prepared = prepare_cloud(Shop(db), nodes)
        for slug, quantity in (restock or {}).items():
            prepared.shop.restock(slug, {"quantity": quantity})
        proc.start()
        try:
            yield prepared, proc
        finally:
            proc.stop()
    finally:
        db.close()


@contextmanager
def running_cloud(
    db_path: Path, nodes: tuple[str, ...] = ("edge-1",), restock: dict[str, int] | None = None
) -> Iterator[tuple[Cloud, CloudProcess]]:
    """A prepared SQLite cloud store served by a real ``coresync-cloud`` process."""
    proc = CloudProcess(str(db_path), free_port())
    with _serve(SqliteDatabase(str(db_path)), proc, nodes, restock) as running:
        yield running


@contextmanager
def running_pg_cloud(
    nodes: tuple[str, ...] = ("edge-1", "edge-2"), restock: dict[str, int] | None = None
) -> Iterator[tuple[Cloud, CloudProcess]]:
    """The same on PostgreSQL, in a schema of its own (skips when PostgreSQL is down)."""
    reason = postgres_unreachable()
    if reason:
        missing("PostgreSQL", reason)
    with postgres_schema() as schema:
        db = PostgresDatabase(PG_DSN, schema=schema, pool_size=4)
        proc = CloudProcess(PG_DSN, free_port(), schema=schema)
        with _serve(db, proc, nodes, restock) as running:
            yield running


def make_edge(path: Path, node: str = "edge-1", clock: MutableClock | None = None) -> Shop:
    shop = Shop(SqliteDatabase(str(path)), ShopConfig(node_id=node, number_authority=False), clock)
    shop.migrate()
    return shop


def edge_config(url: str, node: str = "edge-1", **kw: Any) -> CloudSyncConfig:
    base: dict[str, Any] = {"base_url": url, "node_id": node, "batch_size": 50,
                            "backoff_min_s": 0.02, "backoff_max_s": 0.2, "interval_s": 0.05,
                            "request_timeout_s": 5}  # fmt: skip
    return CloudSyncConfig(**{**base, **kw})


def snapshot(shop: Shop) -> dict[str, Any]:
    """What must match on every node after sync: records, stock and the ledger multiset."""
    with shop.db.read() as tx:
        orders = tx.all("SELECT id, number, member_id, status, total_cents FROM orders ORDER BY id")
        items = tx.all("SELECT order_id, product_id, quantity FROM order_items ORDER BY order_id,"
                       " product_id")  # fmt: skip
        requests = tx.all("SELECT id, number, status FROM concierge_requests ORDER BY id")
        stock = tx.all("SELECT id, stock FROM products ORDER BY id")
        ledger = tx.all("SELECT product_id, kind, delta, order_id FROM stock_movements")
    return {
        "orders": orders,
        "items": items,
        "requests": requests,
        "stock": stock,
        "ledger": Counter(json.dumps(r, sort_keys=True) for r in ledger),
    }


def assert_converged(*shops: Shop) -> None:
    first = snapshot(shops[0])
    for other in shops[1:]:
        snap = snapshot(other)
        for key in first:
            assert snap[key] == first[key], f"{key} differs"
    for shop in shops:
        assert shop.ledger_mismatches() == []
        numbers = [o["number"] for o in first["orders"]]
        assert len(numbers) == len(set(numbers))


def now() -> datetime:
    return datetime.now(UTC)


async def off_loop(fn: Callable[[], T]) -> T:
    """Run a blocking call or check (SQLite, the shop) in a thread, never on the loop."""
    return await asyncio.to_thread(fn)


def scalar(shop: Shop, sql: str, params: tuple[Any, ...] = ()) -> Any:
    """One value from ``shop``'s database (blocking: call it through ``off_loop``)."""
    with shop.db.read() as tx:
        return tx.scalar(sql, params)
