"""Retention of the growing tables on real SQLite files, in the running
service too; revocations and the audit log written at synchronous=FULL."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from edge.api import db as api_db
from edge.config import parse_config
from edge.door.store import DoorEvent, DoorStore
from edge.migrations import migrate
from edge.ops.retention import RetentionConfig, prune_once
from edge.service import EdgeService
from edge.store import CommandRecord, Store
from edge.throttle import Throttle

DAY = 86_400.0


def _count(path: Path, table: str) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def _seed_door(data: Path) -> None:
    door = DoorStore(data / "door.db")
    try:
        door.grant_consent("m1", "v3", "face access", 365, "desk")
        door.record_event(DoorEvent("pin", "deny", "wrong_pin", member_id="m1"))
        door.pin_failure(["member:m1"], Throttle(4, 60, 60, 900))
    finally:
        door.close()


async def _seed_edge(store: Store) -> None:
    await store.log_command(CommandRecord("staff", "ann", "r1/light", {"on": True}, "ok"))

    def api_rows(conn: sqlite3.Connection) -> None:
        migrate(conn, "api", api_db.API_MIGRATIONS)
        api_db.insert_audit(conn, "staff:ann", "auth.login", "ann", "ok", None, "10.0.0.5")
        api_db.record_failure(conn, "user:ann", time.time(), Throttle(3, 1.0, 60.0))

    await store.call(api_rows)


async def test_each_table_is_pruned_at_its_own_age_and_consent_is_kept(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    await asyncio.to_thread(_seed_door, data)
    store = Store(data / "edge.db")
    await store.open()
    try:
        await _seed_edge(store)
        cfg = RetentionConfig()
        now = time.time()
        kept = await prune_once(store, data, cfg, now + 2 * 3600)
        assert kept == {
            "command_log": 0,
            "api_audit": 0,
            "api_login_failures": 0,
            "door_events": 0,
            "pin_failures": 0,
            "state_history": 0,
            "state_history_minute": 0,
        }
        gone = await prune_once(store, data, cfg, now + 2 * DAY)
        assert gone["api_login_failures"] == 1 and gone["pin_failures"] == 1, gone
        gone = await prune_once(store, data, cfg, now + 91 * DAY)
        assert gone["command_log"] == 1 and gone["door_events"] == 0, gone
        gone = await prune_once(store, data, cfg, now + 181 * DAY)
        assert gone["door_events"] == 1 and gone["api_audit"] == 0, gone
        gone = await prune_once(store, data, cfg, now + 366 * DAY)
        assert gone["api_audit"] == 1, gone
    finally:
        await store.close()
    # Consent records are the proof of consent: never pruned.
    assert await asyncio.to_thread(_count, data / "door.db", "consent_records") == 1
    assert await asyncio.to_thread(_count, data / "door.db", "door_events") == 0


async def test_the_running_service_prunes_with_its_configured_retention(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = Store(data / "edge.db")
    await store.open()
    await _seed_edge(store)
    await store.close()
    await asyncio.to_thread(_seed_door, data)
    cfg = parse_config(
        f"""
[site]
id = "retention"
name = "Retention"
[storage]
data_dir = "{data}"
[retention]
command_log_days = 0.00001
door_events_days = 0.00001
interval_s = 1
[[rooms]]
id = "r1"
name = "Room"
"""
    )
    service = EdgeService(cfg, with_api=False)
    await service.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        seen: tuple[int, int] = (-1, -1)
        while loop.time() < deadline:
            seen = await asyncio.to_thread(
                lambda: (
                    _count(data / "edge.db", "command_log"),
                    _count(data / "door.db", "door_events"),
                )
            )
            if seen == (0, 0):
                break
            await asyncio.sleep(0.1)
        assert seen == (0, 0), f"command_log, door_events rows left: {seen}"
    finally:
        await service.stop()
    assert await asyncio.to_thread(_count, data / "edge.db", "api_audit") == 1  # 365 days


def test_revocations_and_audit_rows_are_written_at_full_sync(tmp_path: Path) -> None:
    from edge.store import connect

    conn = connect(tmp_path / "edge.db")
    migrate(conn, "api", api_db.API_MIGRATIONS)
    conn.execute(
        "INSERT INTO api_tablets (tablet_id, room_id, token_hash, paired_by, created_at)"
        " VALUES ('t1', 'r1', 'h', 'ann', 'now')"
    )
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    assert api_db.revoke_tablet(conn, "t1")
    api_db.insert_audit(conn, "staff:ann", "tablet.revoke", "t1", "ok", None, None)
    conn.set_trace_callback(None)
    writes = [i for i, s in enumerate(statements) if s.startswith(("UPDATE", "INSERT"))]
    assert len(writes) == 2, statements
    for i in writes:
        assert statements[i - 1] == "PRAGMA synchronous=FULL", statements
        assert statements[i + 1] == "PRAGMA synchronous=NORMAL", statements
    assert conn.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL again
    conn.close()
