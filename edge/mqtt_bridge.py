"""The site's own MQTT surface.

- Room state, retained, on ``coresync/<site_id>/rooms/<room_id>/state``:
  the staff room view (edge.room_views: the same bytes the LAN API serves),
  republished only when a device in the room changed (coalesced; a poll that
  reads the same values publishes nothing), and all rooms again after every
  reconnect so the broker's retained copy is fresh.
- Scene activation: publish a scene id (plain text, or ``{"scene": "<id>"}``)
  to ``coresync/<site_id>/rooms/<room_id>/scene/set``; the outcome goes to
  ``coresync/<site_id>/rooms/<room_id>/scene/result`` (not retained).
Limits apply exactly as for tablets and staff: scenes go through the core.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from drivers.mqtt.connection import MqttConnection
from drivers.tasks import watch
from edge.core import Actor, EdgeCore
from edge.errors import EdgeError

log = logging.getLogger(__name__)

# Coalesce bursts (a scene changes several devices at once) into one publish.
COALESCE_S = 0.02


def room_state_topic(site_id: str, room_id: str) -> str:
    return f"coresync/{site_id}/rooms/{room_id}/state"


def scene_set_topic(site_id: str, room_id: str = "+") -> str:
    return f"coresync/{site_id}/rooms/{room_id}/scene/set"


def scene_result_topic(site_id: str, room_id: str) -> str:
    return f"coresync/{site_id}/rooms/{room_id}/scene/result"


def parse_scene_payload(payload: bytes) -> str:
    """The scene id from a plain-text or JSON payload; ValueError otherwise."""
    text = payload.decode("utf-8", "strict").strip()
    if text.startswith("{"):
        data = json.loads(text)
        scene = data.get("scene") if isinstance(data, dict) else None
        if not isinstance(scene, str):
            raise ValueError('JSON payload needs a string "scene" field')
        text = scene
    if not text or len(text) > 64:
        raise ValueError("scene id must be 1-64 characters")
    return text


class MqttBridge:
    def __init__(self, core: EdgeCore, connection: MqttConnection) -> None:
        self.core = core
        self.conn = connection
        self.site_id = core.site_id
        self._dirty: set[str] = set()
        self._published: dict[str, bytes] = {}  # room id -> retained payload last sent
        self.publishes = 0
        self._wake = asyncio.Event()
        self._scene_tasks: set[asyncio.Task[None]] = set()
        connection.subscribe(scene_set_topic(self.site_id), self._on_scene_set)
        connection.add_on_connect(self._republish_all)

    async def run(self) -> None:
        """Publish dirty rooms' state until cancelled."""
        sub = self.core.events.subscribe(types={"device_state"}, maxsize=10_000)
        feeder = asyncio.create_task(self._collect(sub), name="mqtt-bridge-collect")
        # The feeder is ours to watch: if it dies, wake up and raise it so the
        # bridge's supervisor restarts the bridge (it would go quiet otherwise).
        feeder.add_done_callback(lambda _: self._wake.set())
        try:
            while True:
                await self._wake.wait()
                if feeder.done():
                    await watch([feeder])
                await asyncio.sleep(COALESCE_S)
                self._wake.clear()
                rooms, self._dirty = self._dirty, set()
                for room_id in sorted(rooms):
                    await self._publish_room(room_id, only_if_changed=True)
        finally:
            sub.close()
            feeder.cancel()
            for task in list(self._scene_tasks):
                task.cancel()
            await asyncio.gather(feeder, *self._scene_tasks, return_exceptions=True)

    async def _collect(self, sub: Any) -> None:
        async for event in sub:
            if event.room_id:
                self._dirty.add(event.room_id)
                self._wake.set()

    async def _publish_room(self, room_id: str, *, only_if_changed: bool = False) -> None:
        payload = self.core.views.encoded(room_id, "staff")
        if only_if_changed and self._published.get(room_id) == payload:
            return
        try:
            await self.conn.publish(
                room_state_topic(self.site_id, room_id), payload, qos=1, retain=True
            )
        except Exception as exc:
            log.debug("room state for %s not published: %s", room_id, exc)
            return
        self._published[room_id] = payload
        self.publishes += 1

    async def _republish_all(self) -> None:
        for room in self.core.rooms():
            await self._publish_room(room.id)

    def _on_scene_set(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        room_id = parts[3] if len(parts) == 6 else ""
        task = asyncio.create_task(self._activate(room_id, payload), name=f"mqtt-scene-{room_id}")
        self._scene_tasks.add(task)
        task.add_done_callback(self._scene_tasks.discard)

    async def _activate(self, room_id: str, payload: bytes) -> None:
        try:
            scene_id = parse_scene_payload(payload)
            result: dict[str, Any] = (
                await self.core.activate_scene(room_id, scene_id, Actor("mqtt", "scene-topic"))
            ).as_dict()
        except (ValueError, EdgeError) as exc:
            log.warning("scene request on room %r refused: %s", room_id, exc)
            result = {"room_id": room_id, "ok": False, "error": str(exc)}
        try:
            await self.conn.publish(
                scene_result_topic(self.site_id, room_id), json.dumps(result).encode(), qos=1
            )
        except Exception as exc:
            log.debug("scene result not published: %s", exc)
