"""Test helpers: a fresh shop database on SQLite or on PostgreSQL.

PostgreSQL tests use database ``test`` on 127.0.0.1:5432 (user postgres) in
a schema created for the run and dropped afterwards; when the server does
not answer, :func:`postgres_dsn_or_skip_reason` says why so tests can skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from edge.shop.base import ShopConfig
from edge.shop.db import Database, PostgresDatabase, SqliteDatabase
from edge.shop.service import Shop

PG_DSN = os.environ.get("CORESYNC_TEST_PG", "postgresql://postgres:postgres@127.0.0.1:5432/test")


def postgres_unreachable() -> str | None:
    """None when PostgreSQL answers, else a message for ``pytest.skip``."""
    try:
        import psycopg

        with psycopg.connect(PG_DSN, connect_timeout=3):
            return None
    except Exception as exc:
        return f"PostgreSQL at {PG_DSN} is unreachable ({exc.__class__.__name__}: {exc})"


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A uniquely named schema, dropped with everything in it on exit."""
    import psycopg

    name = f"shop_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')


@contextmanager
def open_test_database(backend: str, tmp_dir: Path, pool_size: int = 16) -> Iterator[Database]:
    """A fresh, empty database of ``backend`` ("sqlite" or "postgres")."""
    if backend == "sqlite":
        sdb = SqliteDatabase(str(tmp_dir / "shop.db"))
        try:
            yield sdb
        finally:
            sdb.close()
        return
    with postgres_schema() as schema:
        pdb = PostgresDatabase(PG_DSN, schema=schema, pool_size=pool_size)
        try:
            yield pdb
        finally:
            pdb.close()


class MutableClock:
    """A settable clock for date rules (pickup lead time, adult age)."""

    def __init__(self, now: datetime) -> None:
        self.current = now

    def __call__(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


@contextmanager
def make_shop(
    backend: str,
    tmp_dir: Path,
    config: ShopConfig | None = None,
    clock: MutableClock | None = None,
) -> Iterator[Shop]:
    """A migrated :class:`Shop` on a fresh database of ``backend``."""
    with open_test_database(backend, tmp_dir) as db:
        shop = Shop(db, config, clock)
        shop.migrate()
        yield shop
