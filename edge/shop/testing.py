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
from pathlib import Path

from edge.shop.db import Database, PostgresDatabase, SqliteDatabase

PG_DSN = os.environ.get("CORESYNC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


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
