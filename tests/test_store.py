"""SQLite state store: migrations, state, bounded history, command log, kill -9."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.model import Availability, DeviceKind, DeviceSnapshot, LightState
from edge.migrations import MigrationError, current_version, migrate
from edge.store import CORE_MIGRATIONS, CommandRecord, Store, connect

REPO = Path(__file__).resolve().parent.parent


def snap(device_id: str, brightness: int) -> DeviceSnapshot:
    return DeviceSnapshot(
        device_id,
        DeviceKind.LIGHT,
        Availability.ONLINE,
        datetime.now(UTC),
        LightState(on=True, brightness=brightness, color_temp_k=3000),
    )


async def test_state_round_trip_and_history(tmp_path: Path) -> None:
    store = Store(tmp_path / "edge.db")
    await store.open()
    try:
        for b in (10, 20, 30):
            await store.save_state(snap("room/light", b))
        states = await store.load_states()
        assert states["room/light"].state == LightState(on=True, brightness=30, color_temp_k=3000)
        assert states["room/light"].availability is Availability.ONLINE
        history = await store.history("room/light")
        assert [h["state"]["brightness"] for h in history] == [30, 20, 10]
    finally:
        await store.close()


async def test_history_is_bounded(tmp_path: Path) -> None:
    store = Store(tmp_path / "edge.db", history_limit=100)
    await store.open()
    try:
        for i in range(1200):
            await store.save_state(snap("room/light", i % 100))
        count = await store.call(
            lambda c: c.execute("SELECT COUNT(*) FROM state_history").fetchone()[0]
        )
        # Pruned every 500 inserts down to the limit: never more than limit + 500.
        assert count <= 100 + 500
        assert count < 1200
    finally:
        await store.close()


async def test_command_log(tmp_path: Path) -> None:
    store = Store(tmp_path / "edge.db")
    await store.open()
    try:
        await store.log_command(
            CommandRecord("tablet", "t1", "room/light", {"brightness": 40}, "ok", None, 3.2)
        )
        await store.log_command(
            CommandRecord("staff", "ana", "room/heater", {"mode": "heat"}, "timeout", "no answer")
        )
        rows = await store.commands()
        assert [r["result"] for r in rows] == ["timeout", "ok"]
        assert rows[1]["command"] == {"brightness": 40}
        assert rows[1]["actor_kind"] == "tablet"
        only = await store.commands(device_id="room/light")
        assert len(only) == 1
    finally:
        await store.close()


def test_migrations_recorded_and_idempotent(tmp_path: Path) -> None:
    conn = connect(tmp_path / "m.db")
    assert migrate(conn, "core", CORE_MIGRATIONS) == len(CORE_MIGRATIONS)
    assert migrate(conn, "core", CORE_MIGRATIONS) == len(CORE_MIGRATIONS)
    assert current_version(conn, "core") == len(CORE_MIGRATIONS)
    rows = conn.execute("SELECT component, version FROM schema_migrations").fetchall()
    assert rows == [("core", v) for v in range(1, len(CORE_MIGRATIONS) + 1)]


def test_failed_migration_leaves_previous_step(tmp_path: Path) -> None:
    conn = connect(tmp_path / "m.db")
    steps = [
        "CREATE TABLE a (x INTEGER);",
        "CREATE TABLE b (y INTEGER); INSERT INTO nope VALUES (1);",
    ]
    with pytest.raises(MigrationError, match="migration 2"):
        migrate(conn, "t", steps)
    assert current_version(conn, "t") == 1
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "a" in tables and "b" not in tables


def test_newer_database_is_refused(tmp_path: Path) -> None:
    conn = connect(tmp_path / "m.db")
    migrate(conn, "t", ["CREATE TABLE a (x INTEGER);", "CREATE TABLE b (x INTEGER);"])
    with pytest.raises(MigrationError, match="newer"):
        migrate(conn, "t", ["CREATE TABLE a (x INTEGER);"])


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime
    from pathlib import Path
    from drivers.model import Availability, DeviceKind, DeviceSnapshot, LightState
    from edge.store import CommandRecord, Store

    async def main():
        store = Store(Path(sys.argv[1]))
        await store.open()
        i = 0
        while True:
            i += 1
            await store.save_state(DeviceSnapshot(
                f"room/light{i % 7}", DeviceKind.LIGHT, Availability.ONLINE,
                datetime.now(UTC), LightState(on=True, brightness=i % 101)))
            await store.log_command(CommandRecord("test", "w", "room/light", {"seq": i}, "ok"))
            print(i, flush=True)  # acknowledged: both writes committed

    asyncio.run(main())
    """
)


@pytest.mark.slow
def test_kill_9_during_writes_loses_nothing_committed(tmp_path: Path) -> None:
    rng = random.Random(7)
    db = tmp_path / "edge.db"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    last_acked = 0
    for _round in range(6):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(db)], stdout=subprocess.PIPE, text=True, env=env
        )
        assert proc.stdout is not None
        target = rng.randint(20, 400)
        acked = 0
        for line in proc.stdout:
            acked = int(line)
            if acked >= target:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        seqs = {
            json.loads(r[0])["seq"]
            for r in conn.execute("SELECT command FROM command_log WHERE actor_kind='test'")
        }
        # Each round restarts its counter at 1; every acknowledged write of every
        # round so far must be there.
        assert set(range(1, acked + 1)) <= seqs
        last_acked = max(last_acked, acked)
        conn.close()
    assert last_acked > 0


async def test_lock_commands_are_written_with_full_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import contextlib

    import edge.store
    from edge.ops.durability import durable_write, get_synchronous

    levels: list[str] = []

    @contextlib.contextmanager
    def recording(conn: sqlite3.Connection):  # type: ignore[no-untyped-def]
        with durable_write(conn):
            levels.append(get_synchronous(conn))
            yield conn

    monkeypatch.setattr(edge.store, "durable_write", recording)
    store = Store(tmp_path / "edge.db")
    await store.open()
    try:
        await store.log_command(
            CommandRecord("door", "m1", "entrance/door", {"locked": False}, "ok", durable=True)
        )
        await store.log_command(CommandRecord("staff", "a", "room/light", {"on": True}, "ok"))
        assert levels == ["FULL"]  # only the lock command, and it ran FULL
        after = await store.call(get_synchronous)
        assert after == "NORMAL"  # the connection went back for everything else
        rows = await store.commands()
        assert {r["device_id"] for r in rows} == {"entrance/door", "room/light"}
    finally:
        await store.close()
