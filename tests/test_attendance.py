"""Door attendance is queued for the cloud with nothing biometric in it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge.attendance import attendance_of, forward_attendance
from edge.config import parse_config
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


async def test_forwarder_queues_attendance_without_biometrics(
    mqtt_broker: Broker, tmp_path: Path
) -> None:
    cfg = parse_config(SITE.format(host=mqtt_broker.host, port=mqtt_broker.port))
    service = EdgeService(cfg, data_dir=tmp_path, with_api=False)
    service.add_service("attendance-forward", forward_attendance)
    core = await service.start()
    try:
        core.events.publish("door", {**UNLOCK, "decision": "deny", "member_id": "m-2"})
        core.events.publish("door", UNLOCK)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while True:
            rows = await core.run_shop(lambda shop: shop.outbox())
            attendance = [r for r in rows if r["entity"] == "attendance"]
            if attendance or loop.time() > deadline:
                break
            await asyncio.sleep(0.05)
        assert len(attendance) == 1
        payload = attendance[0]["payload"]
        assert payload["member_id"] == "m-1" and payload["door"] == "entrance/door"
        assert not biometric_keys(payload)
        assert "distance" not in payload and "liveness" not in payload
    finally:
        await service.stop()
