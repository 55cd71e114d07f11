"""Shop pickup orders and concierge requests: one implementation of the rules.

Used by the edge daemon (SQLite) and the cloud API (PostgreSQL or SQLite)::

    from edge.shop import Shop, ShopConfig, open_database
    db = open_database("/var/lib/coresync/shop.db")   # or "postgresql://..."
    shop = Shop(db, ShopConfig(node_id="edge-1"))
    shop.migrate()
"""

from edge.shop.base import ShopConfig
from edge.shop.db import Database, PostgresDatabase, SqliteDatabase, open_database
from edge.shop.errors import (
    Conflict,
    Forbidden,
    InvalidTransition,
    NotFound,
    NumbersExhausted,
    OutOfStock,
    ShopError,
    StorageFailure,
    ValidationFailed,
)
from edge.shop.records import ConciergeRequest, Member, Order, OrderItem, Page, Product
from edge.shop.service import Shop

__all__ = [
    "ConciergeRequest",
    "Conflict",
    "Database",
    "Forbidden",
    "InvalidTransition",
    "Member",
    "NotFound",
    "NumbersExhausted",
    "Order",
    "OrderItem",
    "OutOfStock",
    "Page",
    "PostgresDatabase",
    "Product",
    "Shop",
    "ShopConfig",
    "ShopError",
    "SqliteDatabase",
    "StorageFailure",
    "ValidationFailed",
    "open_database",
]
