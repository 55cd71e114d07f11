"""A tiny DB layer so the shop rules are written once for SQLite and PostgreSQL.

SQL is written with ``?`` placeholders and portable syntax; the PostgreSQL
side swaps them for ``%s``.  Rows come back as plain dicts.

Concurrency choice (both dialects): writes run in READ COMMITTED (PostgreSQL)
or under SQLite's single writer lock (``BEGIN IMMEDIATE``), and every rule
that races is a *conditional* statement — ``UPDATE products SET stock = stock
- ? WHERE id = ? AND stock >= ?`` and ``UPDATE ... SET status = ? WHERE id = ?
AND status IN (...)`` — whose row count says whether it won.  PostgreSQL
re-checks the WHERE clause after waiting on the row lock, so two buyers of the
last unit cannot both succeed, and unlike SERIALIZABLE no caller needs a retry
loop.  Rows are always locked in product-id order, so orders do not deadlock.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from edge.shop.errors import Conflict, StorageFailure

Dialect = Literal["sqlite", "postgres"]
Row = dict[str, Any]
Params = Sequence[Any]
SqliteSync = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
_SQLITE_SYNC_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")


class Tx(ABC):
    """One open transaction; leaving the ``with`` block commits or rolls back."""

    dialect: Dialect

    @abstractmethod
    def execute(self, sql: str, params: Params = ()) -> int:
        """Run a statement; returns the number of rows it touched."""

    @abstractmethod
    def all(self, sql: str, params: Params = ()) -> list[Row]: ...

    def one(self, sql: str, params: Params = ()) -> Row | None:
        rows = self.all(sql, params)
        return rows[0] if rows else None

    def insert_statement(
        self, table: str, columns: str, types: str, rows: Sequence[Sequence[Any]],
        suffix: str = "",
    ) -> tuple[str, list[Any]]:  # fmt: skip
        """One INSERT of many rows (``columns`` and their PostgreSQL ``types`` comma
        separated; ``suffix``: ON CONFLICT / RETURNING).  PostgreSQL gets one array per
        column (``unnest``), so the statement's text does not grow with the rows and is
        prepared once; SQLite a VALUES list.  The arrays travel in binary (``%b``):
        psycopg's text format quotes every element with a regular expression, which
        cost more than the rest of a batch of orders."""
        if self.dialect == "postgres":
            arrays = ", ".join(f"%b::{t.strip()}[]" for t in types.split(","))
            sql = f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays}){suffix}"
            return sql, [list(column) for column in zip(*rows, strict=True)]
        one = "(" + ", ".join("?" for _ in columns.split(",")) + ")"
        sql = f"INSERT INTO {table} ({columns}) VALUES {', '.join(one for _ in rows)}{suffix}"
        return sql, [v for row in rows for v in row]

    def execute_all(self, statements: Sequence[tuple[str, Params]]) -> None:
        """Write statements that need no answer, in order.  PostgreSQL runs them as one
        statement (data-modifying CTEs: one round trip; constraints are checked at its
        end, so a row may reference one written before it in the same call)."""
        if self.dialect == "postgres" and len(statements) > 1:
            *first, (last, _) = statements
            ctes = ", ".join(f"w{i} AS ({sql})" for i, (sql, _) in enumerate(first))
            self.execute(f"WITH {ctes} {last}",
                         [v for _, params in statements for v in params])  # fmt: skip
            return
        for sql, params in statements:
            self.execute(sql, params)

    def scalar(self, sql: str, params: Params = ()) -> Any:
        row = self.one(sql, params)
        return None if row is None else next(iter(row.values()))

    @property
    def for_update(self) -> str:
        """Row-lock suffix for SELECTs (SQLite already holds the write lock)."""
        return " FOR UPDATE" if self.dialect == "postgres" else ""


class Database(ABC):
    dialect: Dialect

    @abstractmethod
    def write(self) -> Any:
        """Context manager yielding a :class:`Tx` that may write."""

    @abstractmethod
    def read(self) -> Any:
        """Context manager yielding a :class:`Tx` for a consistent read."""

    @abstractmethod
    def close(self) -> None: ...

    def autocommit(self) -> Any:
        """Context manager yielding a :class:`Tx` whose statements each commit on their
        own (PostgreSQL: no BEGIN/COMMIT round trips; SQLite: one transaction).  Only for
        work whose writes are one statement."""
        return self.write()

    def query_one(self, sql: str, params: Params = ()) -> Row | None:
        """One row of one read-only statement (its own snapshot; no transaction needed)."""
        with self.read() as tx:
            row: Row | None = tx.one(sql, params)
        return row

    def query_all(self, sql: str, params: Params = ()) -> list[Row]:
        """The rows of one read-only statement (its own snapshot)."""
        with self.read() as tx:
            rows: list[Row] = tx.all(sql, params)
        return rows


_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: \w+\.(\w+)")
_PG_UNIQUE = re.compile(r"Key \(([^)]*)\)")


def _unique_conflict(field: str) -> Conflict:
    return Conflict(f"{field} already exists", field=field)


class _SqliteTx(Tx):
    dialect: Dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Params = ()) -> int:
        try:
            return self._conn.execute(sql, tuple(params)).rowcount
        except sqlite3.IntegrityError as exc:
            match = _SQLITE_UNIQUE.search(str(exc))
            if match:
                raise _unique_conflict(match.group(1)) from exc
            raise StorageFailure(str(exc)) from exc
        except sqlite3.OperationalError as exc:  # disk full, I/O error, locked
            raise StorageFailure(str(exc)) from exc

    def all(self, sql: str, params: Params = ()) -> list[Row]:
        try:
            cur = self._conn.execute(sql, tuple(params))
            return [dict(r) for r in cur.fetchall()]
        except (sqlite3.IntegrityError, sqlite3.OperationalError) as exc:
            raise StorageFailure(str(exc)) from exc


class SqliteDatabase(Database):
    """A SQLite file in WAL mode; one connection per thread, writes ``BEGIN IMMEDIATE``.

    ``synchronous`` defaults to FULL: orders, consent and the outbox must
    survive a power cut once committed (docs/durability.md).
    """

    dialect: Dialect = "sqlite"

    def __init__(
        self, path: str, busy_timeout_ms: int = 30_000, *, synchronous: SqliteSync = "FULL"
    ) -> None:
        if synchronous not in _SQLITE_SYNC_LEVELS:
            raise ValueError(
                f"synchronous: expected one of {_SQLITE_SYNC_LEVELS}, got {synchronous!r}"
            )
        self.path = path
        self.synchronous = synchronous
        self._busy_ms = busy_timeout_ms
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise StorageFailure("database is closed")
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _tx(self, begin: str) -> Iterator[Tx]:
        conn = self.connection()
        try:
            conn.execute(begin)
        except sqlite3.Error as exc:
            raise StorageFailure(str(exc)) from exc
        try:
            yield _SqliteTx(conn)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StorageFailure(str(exc)) from exc

    def write(self) -> Any:
        return self._tx("BEGIN IMMEDIATE")

    def read(self) -> Any:
        return self._tx("BEGIN")

    def close(self) -> None:
        self._closed = True
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()


class _PgTx(Tx):
    dialect: Dialect = "postgres"

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def _run(self, sql: str, params: Params) -> Any:
        import psycopg

        # Portable SQL never holds a literal % or ?; the swap below is safe (``%b``, a
        # binary parameter, is written only in PostgreSQL-only SQL).
        try:
            return self._conn.execute(sql.replace("?", "%s"), tuple(params))
        except psycopg.errors.UniqueViolation as exc:
            detail = exc.diag.message_detail or ""
            match = _PG_UNIQUE.search(detail)
            raise _unique_conflict(match.group(1) if match else "key") from exc
        except psycopg.errors.IntegrityError as exc:
            raise StorageFailure(str(exc)) from exc

    def execute(self, sql: str, params: Params = ()) -> int:
        return int(self._run(sql, params).rowcount)

    def all(self, sql: str, params: Params = ()) -> list[Row]:
        cur = self._run(sql, params)
        return list(cur.fetchall()) if cur.description else []


class PostgresDatabase(Database):
    """PostgreSQL through psycopg 3 and a ``psycopg_pool`` pool, READ COMMITTED transactions.

    The pool opens on first use (so building the object never blocks or
    connects) and holds up to ``pool_size`` connections; a caller waits at
    most ``POOL_WAIT_S`` for one, then gets a ``StorageFailure`` (HTTP 503).
    Connections found broken are replaced by the pool.
    """

    dialect: Dialect = "postgres"
    POOL_WAIT_S = 30.0

    def __init__(self, dsn: str, schema: str | None = None, pool_size: int = 10) -> None:
        self.dsn = dsn
        self.schema = schema
        self.pool_size = pool_size
        self._pool: Any = None
        self._lock = threading.Lock()
        self._closed = False

    def _open_pool(self) -> Any:
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        with self._lock:
            if self._closed:
                raise StorageFailure("database is closed")
            if self._pool is None:
                opts = f"-c search_path={self.schema}" if self.schema else ""
                self._pool = ConnectionPool(
                    self.dsn,
                    kwargs={"row_factory": dict_row, "options": opts, "autocommit": True},
                    min_size=1,
                    max_size=self.pool_size,
                    timeout=self.POOL_WAIT_S,
                    open=True,
                    name="coresync",
                )
            return self._pool

    @contextmanager
    def connection(self) -> Iterator[Any]:
        from psycopg_pool import PoolTimeout

        pool = self._pool or self._open_pool()
        try:
            with pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise StorageFailure(f"cannot get a PostgreSQL connection: {exc}") from exc

    @contextmanager
    def _tx(self, read_only: bool) -> Iterator[Tx]:
        import psycopg

        # BEGIN by hand on the autocommit connection: a read-only transaction is
        # one round trip shorter than BEGIN + SET TRANSACTION READ ONLY.
        with self.connection() as conn:
            try:
                conn.execute("BEGIN READ ONLY" if read_only else "BEGIN")
                try:
                    yield _PgTx(conn)
                except BaseException:
                    if not conn.closed:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except psycopg.OperationalError as exc:
                raise StorageFailure(str(exc)) from exc

    def write(self) -> Any:
        return self._tx(read_only=False)

    def read(self) -> Any:
        return self._tx(read_only=True)

    @contextmanager
    def _autocommit(self) -> Iterator[Tx]:
        import psycopg

        with self.connection() as conn:
            try:
                yield _PgTx(conn)
            except psycopg.OperationalError as exc:
                raise StorageFailure(str(exc)) from exc

    def autocommit(self) -> Any:
        return self._autocommit()

    def query_one(self, sql: str, params: Params = ()) -> Row | None:
        """Autocommit: one round trip instead of BEGIN, the statement and COMMIT."""
        import psycopg

        with self.connection() as conn:
            try:
                return _PgTx(conn).one(sql, params)
            except psycopg.OperationalError as exc:
                raise StorageFailure(str(exc)) from exc

    def query_all(self, sql: str, params: Params = ()) -> list[Row]:
        """Autocommit, as ``query_one``."""
        import psycopg

        with self.connection() as conn:
            try:
                return _PgTx(conn).all(sql, params)
            except psycopg.OperationalError as exc:
                raise StorageFailure(str(exc)) from exc

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


def open_database(
    target: str,
    *,
    schema: str | None = None,
    pool_size: int = 10,
    synchronous: SqliteSync = "FULL",
) -> Database:
    """``postgresql://...`` (or ``postgres://``) selects PostgreSQL; anything else is a path
    (``synchronous`` applies to SQLite only)."""
    if target.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(target, schema=schema, pool_size=pool_size)
    return SqliteDatabase(target, synchronous=synchronous)
