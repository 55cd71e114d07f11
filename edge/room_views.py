"""Room views, built and encoded once per change and shared as bytes.

A room view is the room's devices (state, name, limits) and scenes, for one
audience: ``staff`` sees every device and scene, ``tablet`` never sees a
lock nor a scene that unlocks a door.  The LAN API's ``GET /rooms/{id}``,
the WebSocket ``hello`` and the retained MQTT room state all send the same
encoded bytes: a view is encoded when first asked for after a change of one
of its room's devices (the event bus tap drops it), not once per reader.

``last_seen`` in a cached view is at most :data:`FRESH_S` old: a device that
answers every poll with the same values changes nothing, so its view is
rebuilt only to refresh that time.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

import orjson

from drivers.model import DeviceKind
from edge.events import Event

if TYPE_CHECKING:
    from edge.core import EdgeCore, Room

Audience = Literal["staff", "tablet"]

TABLET_KINDS = frozenset({DeviceKind.LIGHT, DeviceKind.CLIMATE, DeviceKind.SENSOR})
FRESH_S = 10.0


def encode(value: Any) -> bytes:
    """Compact JSON (orjson: several times faster than ``json.dumps`` on the
    room views and events every request and fan-out encodes; see
    docs/benchmarks.md).  Non-JSON values (a Decimal, a datetime) as strings."""
    return orjson.dumps(value, default=str)


def scene_unlocks(room: Room, scene_id: str) -> bool:
    scene = next((s for s in room.config.scenes if s.id == scene_id), None)
    return scene is not None and any(a.locked is False for a in scene.devices.values())


def scene_list(room: Room, audience: Audience) -> list[dict[str, Any]]:
    return [
        {"id": s.id, "name": s.name, "devices": sorted(s.devices)}
        for s in room.config.scenes
        if audience == "staff" or not scene_unlocks(room, s.id)
    ]


def build_view(room: Room, audience: Audience) -> dict[str, Any]:
    """The room snapshot with device names and limits; locks hidden from tablets."""
    snap = room.snapshot()
    devices: dict[str, Any] = {}
    for cfg in room.config.devices:
        if audience == "tablet" and cfg.kind not in TABLET_KINDS:
            continue
        devices[cfg.id] = {
            **snap["devices"][cfg.id],
            "name": cfg.name or cfg.id,
            "limits": cfg.limits.model_dump(),
        }
    return {**snap, "devices": devices, "scenes": scene_list(room, audience)}


class RoomViews:
    """The cache of encoded views, dropped per room on each of its device changes."""

    def __init__(self, core: EdgeCore) -> None:
        self.core = core
        self._encoded: dict[tuple[str, Audience], tuple[float, bytes]] = {}
        self.builds = 0  # views encoded so far (the benchmarks count them)
        core.events.tap(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.type == "device_state" and event.room_id is not None:
            self._encoded.pop((event.room_id, "staff"), None)
            self._encoded.pop((event.room_id, "tablet"), None)

    def encoded(self, room_id: str, audience: Audience) -> bytes:
        """The room's view as JSON bytes (raises NotFound for an unknown room)."""
        key = (room_id, audience)
        now = time.monotonic()
        hit = self._encoded.get(key)
        if hit is not None and now - hit[0] < FRESH_S:
            return hit[1]
        data = encode(build_view(self.core.room(room_id), audience))
        self.builds += 1
        self._encoded[key] = (now, data)
        return data

    def encoded_list(self, room_ids: list[str], audience: Audience) -> bytes:
        """A JSON array of several rooms' views, from the cached bytes."""
        return b"[" + b",".join(self.encoded(r, audience) for r in room_ids) + b"]"
