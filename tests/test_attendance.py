"""Door attendance is queued for the cloud with nothing biometric in it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from edge.attendance import attendance_of, forward_attendance
from edge.config import parse_config
from edge.core import EdgeCore
from edge.door.store import DoorEvent, DoorStore
from edge.service import EdgeService
from sync.privacy import biometric_keys
from tests.conftest import Broker

SITE = """\
[site]
id = "att"
name = "Attendance"
[mqtt]
host = "{host}"
port = {port}
zigbee2mqtt_base = "att-test"
[[rooms]]
id = "entrance"
name = "Entrance"
  [[rooms.devices]]
  id = "door"
  kind = "lock"
  type = "zigbee2mqtt"
  friendly_name = "att_door"
"""

UNLOCK = {
    "id": 7,
    "ts": 1_790_000_000.0,
    "method": "face",
    "decision": "unlock",
    "reason": "match",
    "member_id": "m-1",
    "distance": 0.41,
    "liveness": {"passed": True, "blinks": 1},
    "latency_ms": {"total": 61.0},
    "door": "entrance/door",
}


def test_only_unlocks_of_members_count() -> None:
    rec = attendance_of(UNLOCK)
    assert rec is not None
    assert set(rec.model_dump()) == {"member_id", "door", "direction", "at"}
    assert attendance_of({**UNLOCK, "decision": "deny"}) is None
    assert attendance_of({**UNLOCK, "member_id": None, "method": "remote"}) is None


def _record_door_events(door_db: Path, events: list[DoorEvent]) -> None:
    store = DoorStore(door_db)
    try:
        for event in events:
            store.record_event(event)
    finally:
        store.close()


def _count(shop: Any) -> int:
    with shop.db.read() as tx:
        return int(tx.scalar("SELECT COUNT(*) FROM outbox WHERE entity = 'attendance'"))


async def _attendance_count(core: EdgeCore, want: int) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while True:
        n = await core.run_shop(_count)
        if n >= want or loop.time() > deadline:
            return n
        await asyncio.sleep(0.05)


async def _attendance_rows(core: EdgeCore, want: int) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        rows = await core.run_shop(lambda shop: shop.outbox())
        attendance = [r for r in rows if r["entity"] == "attendance"]
        if len(attendance) >= want or loop.time() > deadline:
            return attendance
        await asyncio.sleep(0.05)


UNLOCKED = DoorEvent(
    "face", "unlock", "match", member_id="m-1", distance=0.41,
    liveness={"passed": True, "blinks": 1}, latency_ms={"total": 61.0},
)  # fmt: skip


async def test_forwarder_reads_the_door_store_from_a_cursor_without_biometrics(
    mqtt_broker: Broker, tmp_path: Path
) -> None:
    cfg = parse_config(SITE.format(host=mqtt_broker.host, port=mqtt_broker.port))
    door_db = tmp_path / "door.db"
    await asyncio.to_thread(_record_door_events, door_db, [])  # the door's table exists
    service = EdgeService(cfg, data_dir=tmp_path, with_api=False)
    service.add_service(
        "attendance-forward", lambda core: forward_attendance(core, door_db, "entrance/door")
    )
    core = await service.start()
    try:
        # Nothing reaches the event bus: the forwarder reads the store itself.
        await asyncio.to_thread(
            _record_door_events,
            door_db,
            [DoorEvent("face", "deny", "no_match", member_id="m-2"), UNLOCKED],
        )
        attendance = await _attendance_rows(core, 1)
        assert len(attendance) == 1, attendance
        payload = attendance[0]["payload"]
        assert payload["member_id"] == "m-1" and payload["door"] == "entrance/door"
        assert not biometric_keys(payload)
        assert "distance" not in payload and "liveness" not in payload
        # A burst far beyond any bus queue loses nothing.
        burst = [DoorEvent("pin", "unlock", "pin", member_id=f"m-{i}") for i in range(600)]
        await asyncio.to_thread(_record_door_events, door_db, burst)
        assert await _attendance_count(core, 601) == 601
    finally:
        await service.stop()
    # After a restart the cursor holds: nothing is queued twice.
    service = EdgeService(cfg, data_dir=tmp_path, with_api=False)
    service.add_service(
        "attendance-forward", lambda core: forward_attendance(core, door_db, "entrance/door")
    )
    core = await service.start()
    try:
        await asyncio.to_thread(_record_door_events, door_db, [UNLOCKED])
        assert await _attendance_count(core, 602) == 602
    finally:
        await service.stop()
