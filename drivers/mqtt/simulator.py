"""Simulated Zigbee2MQTT devices, speaking the real protocol over a real broker.

For the demo site and tests.  A :class:`ZigbeeSimulator` plays the
Zigbee2MQTT bridge for a group of :class:`SimulatedZigbeeDevice`: it
publishes each device's availability and full state (retained), answers
``<base>/<name>/set`` by applying the command and publishing the new full
state, and ``<base>/<name>/get`` by publishing the state again.  Fault
knobs: :meth:`ZigbeeSimulator.mute` (stop answering), ``go_offline`` /
``go_online`` and :meth:`ZigbeeSimulator.update` (report any fields, e.g. a
jammed lock or an open door).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from drivers.backoff import backoff_delay
from drivers.color import parse_color
from drivers.model import DeviceKind
from drivers.mqtt.connection import NO_DELAY

log = logging.getLogger(__name__)

AMBIENT_C = 20.0


def initial_state(kind: DeviceKind) -> dict[str, Any]:
    if kind is DeviceKind.LIGHT:
        return {
            "state": "OFF",
            "brightness": 254,
            "color_temp": 370,
            "color_mode": "color_temp",
        }
    if kind is DeviceKind.LOCK:
        # A door lock starts locked, as a real entrance does out of hours.
        return {"state": "LOCKED", "lock_state": "locked", "contact": True}
    if kind is DeviceKind.CLIMATE:
        return {
            "system_mode": "off",
            "occupied_heating_setpoint": 21.0,
            "local_temperature": AMBIENT_C,
            "humidity": 40.0,
        }
    return {"temperature": 21.5, "humidity": 45.0, "battery": 100}


@dataclass
class SimulatedZigbeeDevice:
    """One simulated device; ``base`` overrides the simulator's base topic."""

    kind: DeviceKind
    friendly_name: str
    base: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    muted: bool = False
    online: bool = True
    commands: list[dict[str, Any]] = field(default_factory=list)  # every /set received
    # A heat command's on_time (Tasmota/Zigbee2MQTT style): the device's own
    # timer switches it off at this monotonic time, daemon or not.
    off_at: float | None = None
    # A bulb's colour temperature range in mireds (a real one holds 153-500,
    # some 250-454): asked for more, it clamps and reports what it holds.
    color_temp_range: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not self.state:
            self.state = initial_state(self.kind)

    def apply(self, command: dict[str, Any]) -> None:
        """Apply a /set payload the way Zigbee2MQTT devices behave."""
        s = self.state
        if self.kind is DeviceKind.LIGHT:
            if "brightness" in command:
                s["brightness"] = max(0, min(254, int(command["brightness"])))
                if "state" not in command:
                    s["state"] = "ON" if s["brightness"] > 0 else "OFF"
            if "color_temp" in command:
                mireds = int(command["color_temp"])
                if self.color_temp_range is not None:
                    low, high = self.color_temp_range
                    mireds = max(low, min(high, mireds))
                s["color_temp"] = mireds
                s["color_mode"] = "color_temp"
            if isinstance(command.get("color"), dict):
                # Zigbee2MQTT takes {x, y}, {r, g, b} or {hex}; it reports xy.
                x, y = parse_color(command["color"].get("hex") or command["color"])
                s["color"] = {"x": x, "y": y}
                s["color_mode"] = "xy"
            if command.get("state") in ("ON", "OFF"):
                s["state"] = command["state"]
            elif command.get("state") == "TOGGLE":
                s["state"] = "OFF" if s["state"] == "ON" else "ON"
        elif self.kind is DeviceKind.LOCK:
            if command.get("state") in ("LOCK", "UNLOCK"):
                locked = command["state"] == "LOCK"
                s["state"] = "LOCKED" if locked else "UNLOCKED"
                s["lock_state"] = "locked" if locked else "unlocked"
        elif self.kind is DeviceKind.CLIMATE:
            if command.get("system_mode") in ("off", "heat", "cool", "auto"):
                s["system_mode"] = command["system_mode"]
            if "occupied_heating_setpoint" in command:
                s["occupied_heating_setpoint"] = round(
                    float(command["occupied_heating_setpoint"]), 2
                )
            if s["system_mode"] == "off":
                self.off_at = None
            elif "on_time" in command:
                self.off_at = time.monotonic() + float(command["on_time"])

    def tick(self, dt_s: float, heat_rate: float, cool_rate: float) -> bool:
        """Move a thermostat's temperature; True when it changed."""
        if self.kind is not DeviceKind.CLIMATE:
            return False
        s = self.state
        if self.off_at is not None and time.monotonic() >= self.off_at:
            self.off_at = None
            s["system_mode"] = "off"
            return True
        current = float(s["local_temperature"])
        target = float(s["occupied_heating_setpoint"])
        if s["system_mode"] in ("heat", "auto") and current < target:
            new = min(target, current + heat_rate * dt_s)
        else:
            goal = AMBIENT_C if s["system_mode"] != "cool" else min(AMBIENT_C, target)
            step = cool_rate * dt_s
            new = max(goal, current - step) if current > goal else min(goal, current + step)
        new = round(new, 2)
        if new == current:
            return False
        s["local_temperature"] = new
        return True


class ZigbeeSimulator:
    """A fake Zigbee2MQTT bridge for a group of devices, with its own client."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        base: str = "zigbee2mqtt",
        devices: list[SimulatedZigbeeDevice] | None = None,
        tick_s: float = 1.0,
        heat_rate_c_per_s: float = 0.5,
        cool_rate_c_per_s: float = 0.05,
        clear_retained_on_stop: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.base = base
        self.devices = {d.friendly_name: d for d in devices or []}
        self.tick_s = tick_s
        self.heat_rate = heat_rate_c_per_s
        self.cool_rate = cool_rate_c_per_s
        self.clear_retained_on_stop = clear_retained_on_stop
        self._client: aiomqtt.Client | None = None
        self._up = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._id = f"z2m-sim-{uuid.uuid4().hex[:10]}"

    # -- topics ---------------------------------------------------------------------
    def _base_of(self, device: SimulatedZigbeeDevice) -> str:
        return device.base or self.base

    def state_topic(self, name: str) -> str:
        return f"{self._base_of(self.devices[name])}/{name}"

    @property
    def bridge_topic(self) -> str:
        return f"{self.base}/bridge/state"

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Start, and wait until connected with every device published."""
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._run(), name=f"{self._id}:client"),
            asyncio.create_task(self._thermostats(), name=f"{self._id}:thermostats"),
        ]
        await self.connected()

    async def connected(self) -> None:
        await self._up.wait()

    async def stop(self) -> None:
        """Mark every device offline (or clear the retained topics), disconnect. Idempotent."""
        tasks, self._tasks = self._tasks, []
        client = self._client
        if tasks and client is not None and self._up.is_set():
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                async with asyncio.timeout(3):
                    await self._farewell(client)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _farewell(self, client: aiomqtt.Client) -> None:
        clear = self.clear_retained_on_stop
        for name in self.devices:
            topic = self.state_topic(name)
            if clear:
                await client.publish(topic, b"", qos=1, retain=True)
            await client.publish(
                f"{topic}/availability", b"" if clear else _availability(False), 1, True
            )
        await client.publish(self.bridge_topic, b"" if clear else _availability(False), 1, True)

    # -- fault knobs ----------------------------------------------------------------------
    def mute(self, name: str, muted: bool = True) -> None:
        """Stop (or resume) answering /set and /get for ``name``."""
        self.devices[name].muted = muted

    async def go_offline(self, name: str) -> None:
        """Publish ``offline`` for ``name`` and stop answering, as for a dead battery."""
        self.devices[name].online = False
        await self._publish_availability(name)

    async def go_online(self, name: str) -> None:
        self.devices[name].online = True
        await self._publish_availability(name)
        await self._publish_state(name)

    async def update(self, name: str, **fields: Any) -> None:
        """Change reported fields and publish the full state (jam a lock, open a door...)."""
        self.devices[name].state.update(fields)
        await self._publish_state(name)

    # -- internals -------------------------------------------------------------------------
    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                client = aiomqtt.Client(
                    self.host,
                    self.port,
                    identifier=self._id,
                    will=aiomqtt.Will(self.bridge_topic, _availability(False), 1, True),
                    socket_options=NO_DELAY,
                )
                async with client:
                    self._client = client
                    attempt = 0
                    await self._announce(client)
                    self._up.set()
                    async for message in client.messages:
                        await self._handle(str(message.topic), message.payload)
            except aiomqtt.MqttError as exc:
                log.info("zigbee simulator: broker %s:%d: %s", self.host, self.port, exc)
            finally:
                self._up.clear()
                self._client = None
            await asyncio.sleep(backoff_delay(attempt, 0.05, 1.0))
            attempt += 1

    async def _announce(self, client: aiomqtt.Client) -> None:
        await client.publish(self.bridge_topic, _availability(True), qos=1, retain=True)
        for name, device in self.devices.items():
            topic = self.state_topic(name)
            await client.subscribe(f"{topic}/set", qos=1)
            await client.subscribe(f"{topic}/get", qos=1)
            await client.publish(f"{topic}/availability", _availability(device.online), 1, True)
            await client.publish(topic, json.dumps(device.state), qos=1, retain=True)

    async def _handle(self, topic: str, payload: Any) -> None:
        head, _, verb = topic.rpartition("/")
        device = next((d for n, d in self.devices.items() if self.state_topic(n) == head), None)
        if device is None or device.muted or not device.online:
            return
        if verb == "set":
            try:
                command = json.loads(payload)
                if not isinstance(command, dict):
                    raise ValueError("not an object")
            except ValueError:
                log.warning("zigbee simulator: bad /set payload on %s", topic)
                return  # Zigbee2MQTT logs and ignores bad commands too
            device.commands.append(command)
            try:
                device.apply(command)
            except (TypeError, ValueError, KeyError) as exc:
                log.warning("zigbee simulator: %s ignored: %s", topic, exc)
                return
        await self._publish_state(device.friendly_name)

    async def _publish_state(self, name: str) -> None:
        client = self._client
        if client is not None:
            body = json.dumps(self.devices[name].state)
            await client.publish(self.state_topic(name), body, qos=1, retain=True)

    async def _publish_availability(self, name: str) -> None:
        client = self._client
        if client is not None:
            online = self.devices[name].online
            topic = f"{self.state_topic(name)}/availability"
            await client.publish(topic, _availability(online), qos=1, retain=True)

    async def _thermostats(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            for name, device in self.devices.items():
                if device.online and device.tick(self.tick_s, self.heat_rate, self.cool_rate):
                    with contextlib.suppress(aiomqtt.MqttError):
                        await self._publish_state(name)


def _availability(online: bool) -> bytes:
    return json.dumps({"state": "online" if online else "offline"}).encode()
