"""Home Assistant MQTT discovery: every room appears in Home Assistant by itself.

Retained configs go to ``<prefix>/<component>/coresync_<site_id>/<object_id>/config``
after every (re)connect, one Home Assistant *device* per room:

- each scene: a ``button`` pressing ``coresync/<site>/rooms/<room>/scene/set``;
- lights (``light``), thermostats and heaters (``climate``), sensors (one
  ``sensor`` per value, announced when the device first reports it);
- locks: a ``lock`` with commands only for those ``[home_assistant]
  lock_commands`` names, else a read-only ``binary_sensor`` (device class lock).

Every entity reads the retained room state (``coresync/<site>/rooms/<room>/state``)
through a value template, and is available when both the daemon
(``coresync/<site>/status``) and the device (its ``availability`` in the room
state) are online.  Commands go to ``coresync/<site>/rooms/<room>/devices/<id>/set``
as the LAN API's JSON command (``{"on": true, "brightness": 40}``) and run
through the core with actor ``mqtt:home-assistant``: limits apply exactly as
for tablets and staff; the outcome goes to ``.../devices/<id>/result``.

A config under our node whose device is no longer in the site config (a
device or room removed, then the daemon restarted) is cleared with an empty
retained message as soon as the broker hands it over, so Home Assistant
drops the entity.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from drivers.model import DeviceKind
from drivers.mqtt.connection import MqttConnection
from edge.config import RoomConfig, SiteConfig
from edge.core import Actor, EdgeCore
from edge.errors import EdgeError
from edge.ha_config import HomeAssistantConfig
from edge.mqtt_bridge import room_state_topic, scene_set_topic

log = logging.getLogger(__name__)

ACTOR = Actor("mqtt", "home-assistant")
ORIGIN = {"name": "CoreSync Edge", "support_url": "https://coresync.invalid/docs/mqtt"}
# Home Assistant's units and device classes for the values sensors report.
SENSOR_CLASSES: dict[str, tuple[str | None, str | None]] = {
    "temperature": ("temperature", "°C"),
    "humidity": ("humidity", "%"),
    "battery": ("battery", "%"),
    "illuminance": ("illuminance", "lx"),
    "illuminance_lux": ("illuminance", "lx"),
    "pressure": ("pressure", "hPa"),
    "co2": ("carbon_dioxide", "ppm"),
    "voltage": ("voltage", "V"),
    "power": ("power", "W"),
    "energy": ("energy", "kWh"),
}
HEATER_MODES = ["off", "heat"]
CLIMATE_MODES = ["off", "heat", "cool", "auto"]
SAFE_KEY = re.compile(r"[^a-zA-Z0-9_]")


def device_set_topic(site_id: str, room_id: str = "+", device_id: str = "+") -> str:
    return f"coresync/{site_id}/rooms/{room_id}/devices/{device_id}/set"


def device_result_topic(site_id: str, room_id: str, device_id: str) -> str:
    return f"coresync/{site_id}/rooms/{room_id}/devices/{device_id}/result"


def node_id(site_id: str) -> str:
    return f"coresync_{site_id}"


def object_id(room_id: str, device_id: str) -> str:
    """Readable and unique: ids may hold '_' and '-', so ``room_device`` alone
    could name two devices; a short hash of ``room/device`` tells them apart."""
    digest = hashlib.blake2s(f"{room_id}/{device_id}".encode(), digest_size=3).hexdigest()
    return f"{room_id}_{device_id}_{digest}"


@dataclass(frozen=True)
class Entity:
    component: str
    object_id: str
    config: dict[str, Any]


class Discovery:
    """The configs of one site (pure: no I/O)."""

    def __init__(self, cfg: SiteConfig, ha: HomeAssistantConfig) -> None:
        self.cfg = cfg
        self.ha = ha
        self.site_id = cfg.site.id
        self.node = node_id(self.site_id)
        self.status_topic = f"coresync/{self.site_id}/status"
        door = cfg.door
        self._door_lock = f"{door.room}/{door.lock}" if door is not None else None
        self.lock_commands = set(ha.lock_commands) - {self._door_lock}

    def topic(self, entity: Entity) -> str:
        return (
            f"{self.ha.discovery_prefix}/{entity.component}/{self.node}/{entity.object_id}/config"
        )

    def config_filter(self) -> str:
        return f"{self.ha.discovery_prefix}/+/{self.node}/+/config"

    def entities(self, sensor_keys: dict[str, list[str]] | None = None) -> list[Entity]:
        """Every entity of the site; ``sensor_keys`` maps "room/device" to the
        values that sensor has reported so far."""
        keys = sensor_keys or {}
        out: list[Entity] = []
        for room in self.cfg.rooms:
            out += self._scenes(room)
            for dev in room.devices:
                ref = f"{room.id}/{dev.id}"
                out += self._device(room, dev.id, dev.name or dev.id, dev.kind, ref, keys)
        return out

    def sensor_entities(self, ref: str, keys: list[str]) -> list[Entity]:
        """The entities of values ``keys`` of the sensor ``ref`` ("room/device")."""
        room_id, _, dev_id = ref.partition("/")
        for room in self.cfg.rooms:
            for dev in room.devices if room.id == room_id else ():
                if dev.id == dev_id:
                    obj, name = object_id(room.id, dev.id), dev.name or dev.id
                    return [self._sensor(room, obj, name, dev.id, key) for key in keys]
        return []

    def device_prefixes(self) -> set[str]:
        """Object-id prefixes of the configured devices (a sensor's values extend them)."""
        return {object_id(r.id, d.id) for r in self.cfg.rooms for d in r.devices}

    # -- per entity ------------------------------------------------------------------------
    def _base(self, room: RoomConfig, obj: str, name: str, dev_id: str | None) -> dict[str, Any]:
        availability: list[dict[str, str]] = [{"topic": self.status_topic}]
        if dev_id is not None:
            availability.append(
                {
                    "topic": room_state_topic(self.site_id, room.id),
                    "value_template": "{{ " + _dev(dev_id) + ".availability }}",
                }
            )
        return {
            "name": name,
            "unique_id": f"{self.node}_{obj}",
            "object_id": f"{self.node}_{obj}",
            "availability": availability,
            "availability_mode": "all",
            "device": {
                "identifiers": [f"{self.node}_{room.id}"],
                "name": room.name,
                "manufacturer": "CoreSync",
                "model": "Spa room",
                "suggested_area": room.name,
            },
            "origin": ORIGIN,
        }

    def _scenes(self, room: RoomConfig) -> Iterator[Entity]:
        for scene in room.scenes:
            obj = object_id(room.id, f"scene-{scene.id}")
            config = self._base(room, obj, scene.name, None)
            config |= {
                "command_topic": scene_set_topic(self.site_id, room.id),
                "payload_press": scene.id,
                "icon": "mdi:palette",
            }
            yield Entity("button", obj, config)

    def _device(
        self,
        room: RoomConfig,
        dev_id: str,
        name: str,
        kind: DeviceKind,
        ref: str,
        sensor_keys: dict[str, list[str]],
    ) -> list[Entity]:
        obj = object_id(room.id, dev_id)
        config = self._base(room, obj, name, dev_id)
        state = room_state_topic(self.site_id, room.id)
        command = device_set_topic(self.site_id, room.id, dev_id)
        s = _dev(dev_id) + ".state"
        dev_cfg = next(d for d in room.devices if d.id == dev_id)
        limits = dev_cfg.limits
        if kind is DeviceKind.LIGHT:
            config |= {
                "command_topic": command,
                "payload_on": '{"on": true}',
                "payload_off": '{"on": false}',
                "state_topic": state,
                "state_value_template": _tristate(f"{s}.on", "ON", "OFF"),
                "brightness_command_topic": command,
                "brightness_command_template": '{"on": true, "brightness": {{ value }}}',
                "brightness_state_topic": state,
                "brightness_value_template": "{{ " + s + ".brightness or 0 }}",
                "brightness_scale": 100,
                "on_command_type": "brightness",
            }
            return [Entity("light", obj, config)]
        if kind is DeviceKind.CLIMATE:
            config |= {
                "modes": HEATER_MODES if dev_cfg.heater else CLIMATE_MODES,
                "mode_command_topic": command,
                "mode_command_template": '{"mode": "{{ value }}"}',
                "mode_state_topic": state,
                "mode_state_template": "{{ " + s + ".mode or 'off' }}",
                "temperature_command_topic": command,
                "temperature_command_template": '{"target_c": {{ value }}}',
                "temperature_state_topic": state,
                "temperature_state_template": "{{ " + s + ".target_c }}",
                "current_temperature_topic": state,
                "current_temperature_template": "{{ " + s + ".current_c }}",
                "current_humidity_topic": state,
                "current_humidity_template": "{{ " + s + ".humidity }}",
                "min_temp": limits.min_target_c,
                "max_temp": limits.max_target_c,
                "temp_step": 0.5,
                "temperature_unit": "C",
            }
            return [Entity("climate", obj, config)]
        if kind is DeviceKind.LOCK and ref in self.lock_commands:
            config |= {
                "command_topic": command,
                "payload_lock": '{"locked": true}',
                "payload_unlock": '{"locked": false}',
                "state_topic": state,
                "value_template": "{% set s = " + s + " %}"
                "{{ 'JAMMED' if s.jammed else "
                + _tristate_expr("s.locked", "LOCKED", "UNLOCKED")
                + " }}",
            }
            return [Entity("lock", obj, config)]
        if kind is DeviceKind.LOCK:
            # Read-only: device class lock means "on" = unlocked.
            config |= {
                "device_class": "lock",
                "state_topic": state,
                "value_template": _tristate(f"{s}.locked", "OFF", "ON"),
            }
            return [Entity("binary_sensor", obj, config)]
        return [self._sensor(room, obj, name, dev_id, key) for key in sensor_keys.get(ref, [])]

    def _sensor(self, room: RoomConfig, obj: str, name: str, dev_id: str, key: str) -> Entity:
        value_obj = f"{obj}_{SAFE_KEY.sub('_', key)}"
        config = self._base(room, value_obj, f"{name} {key.replace('_', ' ')}", dev_id)
        device_class, unit = SENSOR_CLASSES.get(key, (None, None))
        config |= {
            "state_topic": room_state_topic(self.site_id, room.id),
            "value_template": "{{ " + _dev(dev_id) + f".state['values'][{json.dumps(key)}]" + " }}",
            "state_class": "measurement",
        }
        if device_class is not None:
            config["device_class"] = device_class
        if unit is not None:
            config["unit_of_measurement"] = unit
        return Entity("sensor", value_obj, config)


def _dev(dev_id: str) -> str:
    return f"value_json.devices[{json.dumps(dev_id)}]"


def _tristate_expr(expr: str, true: str, false: str) -> str:
    # "None" is Home Assistant's payload for "state unknown".
    unknown = f"('{false}' if {expr} is sameas false else 'None')"
    return f"('{true}' if {expr} is sameas true else {unknown})"


def _tristate(expr: str, true: str, false: str) -> str:
    return "{{ " + _tristate_expr(expr, true, false) + " }}"


class HaDiscovery:
    """Publishes the configs on every connect, clears stale ones, runs commands."""

    def __init__(self, core: EdgeCore, connection: MqttConnection, ha: HomeAssistantConfig) -> None:
        self.core = core
        self.conn = connection
        self.discovery = Discovery(core.config, ha)
        self.site_id = core.site_id
        # The configs this site has now; sensor values add theirs as they appear.
        self._current = {self.discovery.topic(e) for e in self.discovery.entities()}
        self._sensor_keys: dict[str, list[str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._prefixes = self.discovery.device_prefixes()
        self.cleared: list[str] = []  # stale config topics cleared (for tests and logs)
        connection.subscribe(self.discovery.config_filter(), self._on_config_seen)
        connection.subscribe(device_set_topic(self.site_id), self._on_command)
        connection.add_on_connect(self._publish_all)

    async def run(self) -> None:
        """Announce sensor values as they first appear, until cancelled."""
        sub = self.core.events.subscribe(types={"device_state"}, maxsize=1000)
        try:
            async for event in sub:
                await self._note_sensor_values(event.data)
        finally:
            sub.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _note_sensor_values(self, data: dict[str, Any]) -> None:
        if data.get("kind") != DeviceKind.SENSOR.value:
            return
        ref = str(data.get("device_id"))
        values = (data.get("state") or {}).get("values") or {}
        known = self._sensor_keys.setdefault(ref, [])
        new = sorted(k for k in values if k not in known)
        if not new:
            return
        known += new
        if self.conn.is_connected:
            # Only the new values' configs: republishing every config on each
            # sensor's first report was n² messages at start (50 Modbus sensors
            # of 20 values: ~26,000 retained publishes, a busy minute).
            await self._publish(self.discovery.sensor_entities(ref, new))

    async def _publish_all(self) -> None:
        await self._publish(self.discovery.entities(self._sensor_keys))

    async def _publish(self, entities: list[Entity]) -> None:
        for entity in entities:
            topic = self.discovery.topic(entity)
            payload = json.dumps(entity.config, separators=(",", ":")).encode()
            self._current.add(topic)
            try:
                await self.conn.publish(topic, payload, qos=1, retain=True)
            except Exception as exc:
                log.debug("discovery config %s not published: %s", topic, exc)
                return

    def _on_config_seen(self, topic: str, payload: bytes) -> None:
        if not payload or topic in self._current:
            return
        obj = topic.split("/")[-2]
        if any(obj.startswith(prefix + "_") for prefix in self._prefixes):
            return  # a value of a sensor still configured, not reported yet
        if obj in self._prefixes:
            return
        # A config of ours for a device the site config no longer has.
        self.cleared.append(topic)
        log.info("clearing discovery config of a removed device: %s", topic)
        self._spawn(self.conn.publish(topic, b"", qos=1, retain=True), f"clear:{topic}")

    def _on_command(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        room_id, device_id = parts[3], parts[5]
        self._spawn(self._command(room_id, device_id, payload), f"command:{room_id}/{device_id}")

    async def _command(self, room_id: str, device_id: str, payload: bytes) -> None:
        result: dict[str, Any]
        try:
            data = json.loads(payload)
            if not isinstance(data, dict):
                raise ValueError("the command must be a JSON object")
            ref = f"{room_id}/{device_id}"
            room = self.core.config.room(room_id)
            dev_cfg = next((d for d in room.devices if d.id == device_id), None) if room else None
            is_lock = dev_cfg is not None and dev_cfg.kind is DeviceKind.LOCK
            if is_lock and ref not in self.discovery.lock_commands:
                raise ValueError(f"{ref}: lock commands over MQTT are not enabled for this lock")
            outcome = await self.core.command(room_id, device_id, data, ACTOR)
            result = {"ok": outcome.ok, **outcome.as_dict()}
        except (ValueError, EdgeError) as exc:
            log.warning("MQTT command for %s/%s refused: %s", room_id, device_id, exc)
            result = {"ok": False, "error": str(exc)}
        await self.conn.publish(
            device_result_topic(self.site_id, room_id, device_id), json.dumps(result).encode()
        )

    def _spawn(self, coro: Any, what: str) -> None:
        async def wrapped() -> None:
            try:
                await coro
            except Exception as exc:
                log.warning("Home Assistant %s failed: %s", what, exc)

        task = asyncio.create_task(wrapped(), name=f"ha-discovery:{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
