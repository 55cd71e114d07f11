"""Retention: the tables that grow with use are pruned to a configured age.

| table | file | kept |
| --- | --- | --- |
| ``command_log`` | edge.db | ``command_log_days`` |
| ``api_audit`` (staff audit log) | edge.db | ``audit_log_days`` |
| ``api_login_failures`` | edge.db | ``login_failures_hours`` after the last failure, lockout over |
| ``door_events`` | door.db | ``door_events_days`` |
| ``pin_failures`` | door.db | ``login_failures_hours`` after the first failure, lockout over |
| ``state_history`` | edge.db | ``state_history_raw_hours``, then folded per minute |
| ``state_history_minute`` | edge.db | ``state_history_days`` |

Consent records, enrolments and template destruction records are kept for
ever (they are the proof of consent and erasure), orders belong to the shop.

:func:`run_retention` is the daemon's task: one pass at start, then one per
``interval_s``.  Rows go in batches of :data:`BATCH` so the database thread
and the write lock are never held for long.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import Field

from drivers.config import StrictModel
from edge.errors import StorageError
from edge.history import compact_history
from edge.ops.durability import apply_policy
from edge.ops.layout import DOOR_DB

log = logging.getLogger(__name__)
BATCH = 2000
DAY_S = 86_400.0


class RetentionConfig(StrictModel):
    """How long rows of the growing tables are kept (docs/operations.md, Retention)."""

    command_log_days: float = Field(
        90, gt=0, le=36_500, description="Days of device command log kept (edge.db command_log)."
    )
    audit_log_days: float = Field(
        365, gt=0, le=36_500, description="Days of the staff audit log kept (edge.db api_audit)."
    )
    door_events_days: float = Field(
        180,
        gt=0,
        le=36_500,
        description="Days of door events (unlocks, denials) kept (door.db door_events).",
    )
    login_failures_hours: float = Field(
        24,
        gt=0,
        le=8760,
        description="Hours a failed-login or wrong-PIN counter is kept once its lockout is over.",
    )
    state_history_raw_hours: float = Field(
        1,
        gt=0,
        le=24 * 30,
        description=(
            "Hours every stored device state change is kept as is (edge.db state_history); "
            "older changes are folded into per-minute min/max/mean rows."
        ),
    )
    state_history_days: float = Field(
        30,
        gt=0,
        le=36_500,
        description="Days of per-minute device history kept (edge.db state_history_minute).",
    )
    interval_s: float = Field(
        3600, ge=1, le=86_400, description="Seconds between retention passes."
    )


class _Store(Protocol):
    async def call(self, fn: Callable[[Any], Any]) -> Any: ...


def _iso(ts: float) -> str:
    # Same form as the rows' own timestamps (datetime.isoformat in UTC), so
    # text comparison orders them.
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _delete_batched(conn: sqlite3.Connection, table: str, where: str, args: tuple[Any, ...]) -> int:
    total = 0
    while True:
        cur = conn.execute(
            f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {where} LIMIT ?)",
            (*args, BATCH),
        )
        total += cur.rowcount
        if cur.rowcount < BATCH:
            return total


def prune_edge_db(conn: sqlite3.Connection, cfg: RetentionConfig, now: float) -> dict[str, int]:
    """Prune edge.db's growing tables on the store's connection (its thread)."""
    from edge.api.db import forget_old_failures

    present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    out: dict[str, int] = {}
    if "state_history_minute" in present:
        out.update(
            compact_history(
                conn,
                _iso(now - cfg.state_history_raw_hours * 3600),
                _iso(now - cfg.state_history_days * DAY_S),
            )
        )
    if "command_log" in present:
        cutoff = _iso(now - cfg.command_log_days * DAY_S)
        out["command_log"] = _delete_batched(conn, "command_log", "ts < ?", (cutoff,))
    if "api_audit" in present:
        cutoff = _iso(now - cfg.audit_log_days * DAY_S)
        out["api_audit"] = _delete_batched(conn, "api_audit", "ts < ?", (cutoff,))
    if "api_login_failures" in present:
        out["api_login_failures"] = forget_old_failures(conn, now - cfg.login_failures_hours * 3600)
    return out


def prune_door_db(path: Path, cfg: RetentionConfig, now: float) -> dict[str, int]:
    """Prune door.db on a connection of its own (blocking: run it in a thread)."""
    if not path.is_file():
        return {}
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=30000")  # the door service writes beside us
        apply_policy(conn, path)
        present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        out: dict[str, int] = {}
        if "door_events" in present:
            cutoff = now - cfg.door_events_days * DAY_S
            out["door_events"] = _delete_batched(conn, "door_events", "ts < ?", (cutoff,))
        if "pin_failures" in present:
            before = now - cfg.login_failures_hours * 3600
            out["pin_failures"] = _delete_batched(
                conn, "pin_failures", "first_failure < ? AND locked_until < ?", (before, before)
            )
        return out
    finally:
        conn.close()


async def prune_once(
    store: _Store, data_dir: Path, cfg: RetentionConfig, now: float | None = None
) -> dict[str, int]:
    """One pass over every growing table; rows removed per table."""
    at = time.time() if now is None else now
    removed: dict[str, int] = await store.call(lambda conn: prune_edge_db(conn, cfg, at))
    removed.update(await asyncio.to_thread(prune_door_db, Path(data_dir) / DOOR_DB, cfg, at))
    return removed


async def run_retention(
    store: _Store,
    data_dir: Path,
    cfg: RetentionConfig,
    *,
    clock: Callable[[], float] = time.time,
) -> None:
    """The retention task: a pass now, then every ``cfg.interval_s``, until cancelled.

    A pass that fails (disk I/O error, a lock held past the busy timeout) is
    logged and retried at the next interval: old rows can wait an hour."""
    while True:
        try:
            removed = await prune_once(store, data_dir, cfg, clock())
        except (sqlite3.Error, OSError, StorageError) as exc:
            log.warning("retention pass failed, retrying in %.0f s: %s", cfg.interval_s, exc)
        else:
            gone = {table: n for table, n in removed.items() if n}
            if gone:
                log.info("retention removed %s", ", ".join(f"{n} {t}" for t, n in gone.items()))
        await asyncio.sleep(cfg.interval_s)
