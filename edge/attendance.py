"""Door attendance up to the cloud, without any biometric data.

Every door event that let a known member in becomes a sync
:class:`sync.AttendanceEvent` (member, door, direction, time) queued in the
shop's outbox; the sync job carries it up.  The forwarder reads door.db
from a cursor kept in shop.db, not the lossy event bus, so a burst of door
events or a restart loses none.  Only those four fields leave the
building: no score, no liveness detail, no template, no image.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.core import EdgeCore
from edge.events import Event
from edge.shop.service import Shop
from sync import AttendanceEvent
from sync.privacy import assert_no_biometrics

log = logging.getLogger(__name__)


def attendance_of(event: dict[str, Any]) -> AttendanceEvent | None:
    """The attendance record for a door event, or None if it is not one."""
    member = event.get("member_id")
    if event.get("decision") != "unlock" or not member:
        return None
    return AttendanceEvent(
        member_id=str(member),
        door=str(event.get("door") or "door"),
        direction="in",
        at=datetime.fromtimestamp(float(event.get("ts") or 0), UTC),
    )


CURSOR_KEY = "attendance_door_event_id"
BATCH = 200
POLL_S = 2.0


def _door_events_after(door_db: Path, after: int) -> list[dict[str, Any]]:
    """Door events with id > ``after``, oldest first, from door.db (read-only)."""
    conn = sqlite3.connect(f"file:{door_db}?mode=ro", uri=True, timeout=5)
    try:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT id, ts, decision, member_id FROM door_events WHERE id > ? ORDER BY id LIMIT ?",
            (after, BATCH),
        ).fetchall()
        return [dict(r) for r in rows]
    finally:
        conn.close()


def _max_door_event_id(door_db: Path) -> int:
    conn = sqlite3.connect(f"file:{door_db}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM door_events").fetchone()[0])
    finally:
        conn.close()


def forward_batch(shop: Shop, door_db: Path, door: str) -> int:
    """Queue attendance for door events past the cursor; returns how many events
    were read.  The outbox rows and the new cursor commit in one transaction, so
    a crash anywhere neither loses nor repeats an attendance record."""
    if not door_db.exists():
        return 0
    events = _door_events_after(door_db, _cursor(shop))
    if not events:
        return 0
    with shop.db.write() as tx:
        for event in events:
            record = attendance_of({**event, "door": door})
            if record is None:
                continue
            event_id = uuid.uuid4().hex
            payload = {**record.model_dump(mode="json"), "id": event_id}
            assert_no_biometrics("attendance", payload)
            shop.record_change(tx, "attendance", event_id, "door", payload)
        _write_cursor(tx, int(events[-1]["id"]))
    return len(events)


def _cursor(shop: Shop) -> int:
    with shop.db.read() as tx:
        stored = tx.scalar("SELECT value FROM sync_state WHERE key = ?", (CURSOR_KEY,))
    return 0 if stored is None else int(stored)


def init_cursor(shop: Shop, door_db: Path) -> None:
    """Before the daemon's components start: a site upgraded from the event-bus
    forwarder already sent its past door events up, so start after them."""
    with shop.db.read() as tx:
        stored = tx.scalar("SELECT value FROM sync_state WHERE key = ?", (CURSOR_KEY,))
    if stored is None:
        with shop.db.write() as tx:
            _write_cursor(tx, _max_door_event_id(door_db) if door_db.exists() else 0)


def _write_cursor(tx: Any, cursor: int) -> None:
    tx.execute(
        "INSERT INTO sync_state (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (CURSOR_KEY, str(cursor)),
    )


async def forward_attendance(core: EdgeCore, door_db: Path, door: str) -> None:
    """Queue attendance for every member let in, until cancelled.

    Reads the door-event store itself (durable), from a cursor kept in shop.db;
    a door event on the bus only wakes it early.  Errors propagate: the
    supervisor logs them and restarts this component, and the cursor makes
    the restart pick up exactly where it stopped.
    """
    wake = asyncio.Event()

    def on_event(event: Event) -> None:
        if event.type == "door":
            wake.set()

    untap = core.events.tap(on_event)
    try:
        while True:
            read = await core.run_shop(functools.partial(forward_batch, door_db=door_db, door=door))
            if read >= BATCH:
                continue  # more waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), POLL_S)
            wake.clear()
    finally:
        untap()
