"""MQTT device model: Zigbee2MQTT devices and Home Assistant JSON lights.

Each device subscribes to its state and availability topics on the shared
:class:`MqttConnection`.  Availability:

- from the availability topic when the device has one (retained, so it comes
  back by itself after a reconnect);
- while the broker connection is down: UNKNOWN, since nothing is known;
- a device that never sent an availability message is taken ONLINE when it
  reports state.

A command is confirmed by a state report received *after* it was published
that satisfies it (:func:`drivers.model.command_satisfied`); an old retained
state that happens to match does not count, so a device that stopped
answering times out instead of looking fine.  Neither protocol carries a
request id, so a satisfying report already in flight when the command went
out also confirms it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from typing import TypeAlias

from drivers.errors import DeviceTimeout, DeviceUnavailable, TransportError, UnsupportedCommand
from drivers.model import (
    COMMAND_FOR_KIND,
    Availability,
    Command,
    Device,
    DeviceKind,
    DeviceSnapshot,
    DeviceState,
    LightState,
    clamped_error,
    command_satisfied,
    unsatisfied_fields,
)
from drivers.mqtt.codec import (
    decode_ha_json_light,
    decode_plain_availability,
    decode_z2m_availability,
    decode_z2m_state,
    encode_ha_json_light,
    encode_z2m_command,
    z2m_get_request,
)
from drivers.mqtt.config import HaJsonLightDeviceConfig, MqttDeviceConfig, Zigbee2MqttDeviceConfig
from drivers.mqtt.connection import MqttConnection
from drivers.mqtt.errors import MqttCodecError

log = logging.getLogger(__name__)

# After a device answered with other values than asked, how long a better
# report may still come (a light reporting its way through a transition).
CLAMP_SETTLE_S = 0.15

StateDecoder: TypeAlias = Callable[[bytes, DeviceState], DeviceState]


class MqttDevice(Device):
    """What both MQTT device flavours share: topics, availability, confirmation."""

    def __init__(
        self, device_id: str, kind: DeviceKind, connection: MqttConnection, command_topic: str
    ) -> None:
        super().__init__(device_id, kind)
        self.connection = connection
        self.command_topic = command_topic
        self._reports = 0  # state messages decoded so far
        # Payloads this process published, to tell them from someone else's.
        self._sent: collections.deque[bytes] = collections.deque(maxlen=32)
        # (monotonic time, topic) of the last command someone else published to
        # this device's command topic (heaters only: the guard names the source).
        self.last_external_command: tuple[float, str] | None = None
        self._has_availability_topic_data = False
        connection.add_on_disconnect(self._on_broker_lost)

    # -- commands ---------------------------------------------------------------------
    async def send(self, command: Command, *, timeout: float = 5.0, force: bool = False) -> None:
        """Publish and wait for the device's answer: a report satisfying the
        command confirms it; a report that shows other values for the asked
        fields (a bulb clamping 5000 K to 4000 K) raises DeviceClamped once
        no better report followed within :data:`CLAMP_SETTLE_S`; silence
        raises DeviceTimeout after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        reports_before = self._reports
        state_before = self._snapshot.state
        await self.publish_command(command, ack_timeout_s=timeout, force=force)

        def answered(snap: DeviceSnapshot) -> bool:
            return self._reports > reports_before and self._answers(
                state_before, snap.state, command
            )

        if not await self._wait_for(answered, max(0.0, deadline - loop.time())):
            raise DeviceTimeout(
                f"{self.device_id}: no state confirming {command} within {timeout:g}s"
            )
        if command_satisfied(self._snapshot.state, command):
            return
        # An answer, but not the values asked: a transition may still be
        # reporting its way there, so give it a moment, then say what it holds.
        answer_count = self._reports

        def confirmed(snap: DeviceSnapshot) -> bool:
            return self._reports > answer_count and command_satisfied(snap.state, command)

        settle = min(CLAMP_SETTLE_S, max(0.0, deadline - loop.time()))
        if not await self._wait_for(confirmed, settle):
            raise clamped_error(self.device_id, self._snapshot.state, command)

    @staticmethod
    def _answers(before: DeviceState, state: DeviceState, command: Command) -> bool:
        """``state`` answers the command: it satisfies it, or the device moved
        an asked field from a known value to another value than asked (a
        clamp).  A report that moves nothing asked (a retained copy delivered
        late, a battery report) is no answer: neither protocol says which
        report answers which command.  So a device asked again for what it
        already clamped to (4000 K held, 5000 K asked) is a timeout, not a
        clamp: its answer cannot be told from a stale report."""
        if command_satisfied(state, command):
            return True
        for name in unsatisfied_fields(state, command):
            old, new = getattr(before, name, None), getattr(state, name, None)
            if old is not None and new is not None and old != new:
                return True
        return False

    async def publish_command(
        self, command: Command, *, ack_timeout_s: float = 5.0, force: bool = False
    ) -> None:
        """Publish ``command`` (QoS 1) and return once the broker acknowledged it.

        No confirmation from the device: :meth:`send` adds that.  Raises
        UnsupportedCommand, DeviceUnavailable (known offline, nothing sent)
        or TransportError (broker not connected, no PUBACK).
        """
        expected = COMMAND_FOR_KIND[self.kind]
        if expected is None or not isinstance(command, expected):
            raise UnsupportedCommand(
                f"{self.device_id}: {type(command).__name__} does not fit a {self.kind.value}"
            )
        payload = self._encode(command)
        if self._snapshot.availability is Availability.OFFLINE and not force:
            raise DeviceUnavailable(f"{self.device_id} is offline")
        self._sent.append(payload)
        await self.connection.publish(
            self.command_topic, payload, qos=1, ack_timeout_s=ack_timeout_s
        )

    def _encode(self, command: Command) -> bytes:
        raise NotImplementedError

    def watch_command_topic(self) -> None:
        """Notice commands published to this device by anyone but this process."""
        self.connection.subscribe(self.command_topic, self._on_command_seen)

    def _on_command_seen(self, topic: str, payload: bytes) -> None:
        if payload in self._sent:
            self._sent.remove(payload)  # our own, echoed back by the broker
            return
        self.last_external_command = (time.monotonic(), topic)
        log.warning("%s: command published by someone else on %s", self.device_id, topic)

    # -- incoming ---------------------------------------------------------------------------
    def _on_state(self, decode: StateDecoder, topic: str, payload: bytes) -> None:
        if not payload:
            return  # a cleared retained message says nothing about the device
        try:
            state = decode(payload, self._snapshot.state)
        except MqttCodecError as exc:
            log.warning("%s: bad state on %s: %s", self.device_id, topic, exc)
            return
        self._reports += 1
        availability = None
        if not self._has_availability_topic_data:
            availability = Availability.ONLINE
        self._publish(state=state, availability=availability)

    def _on_availability(self, availability: Availability) -> None:
        self._has_availability_topic_data = availability is not Availability.UNKNOWN
        self._publish(availability=availability, seen=availability is Availability.ONLINE)

    def _on_broker_lost(self) -> None:
        self._publish(availability=Availability.UNKNOWN, seen=False)


class Zigbee2MqttDevice(MqttDevice):
    """A light, thermostat, lock or sensor paired with Zigbee2MQTT."""

    def __init__(
        self, cfg: Zigbee2MqttDeviceConfig, connection: MqttConnection, device_id: str
    ) -> None:
        base = connection.config.zigbee2mqtt_base
        self.cfg = cfg
        self.state_topic = f"{base}/{cfg.friendly_name}"
        self.availability_topic = f"{self.state_topic}/availability"
        super().__init__(device_id, cfg.kind, connection, f"{self.state_topic}/set")
        connection.subscribe(self.state_topic, self._on_z2m_state)
        connection.subscribe(self.availability_topic, self._on_z2m_availability)
        # The bridge's own retained status (its last will says offline).
        connection.subscribe(f"{base}/bridge/state", self._on_bridge_state)
        self._bridge_offline = False
        self._availability_behind_bridge = Availability.UNKNOWN
        connection.add_on_connect(self._request_state)
        if cfg.heater:
            self.watch_command_topic()

    def _encode(self, command: Command) -> bytes:
        return encode_z2m_command(self.kind, command)

    def _decode(self, payload: bytes, previous: DeviceState) -> DeviceState:
        return decode_z2m_state(self.kind, payload, previous)

    def _on_z2m_state(self, topic: str, payload: bytes) -> None:
        self._on_state(self._decode, topic, payload)

    def _on_z2m_availability(self, topic: str, payload: bytes) -> None:
        try:
            availability = decode_z2m_availability(payload)
        except MqttCodecError as exc:
            log.warning("%s: bad availability on %s: %s", self.device_id, topic, exc)
            return
        self._on_availability(availability)

    def _on_availability(self, availability: Availability) -> None:
        if self._bridge_offline:
            # The device's own word counts again once the bridge is back.
            self._has_availability_topic_data = availability is not Availability.UNKNOWN
            self._availability_behind_bridge = availability
            return
        super()._on_availability(availability)

    def _on_bridge_state(self, topic: str, payload: bytes) -> None:
        """Zigbee2MQTT down means every device behind it is unreachable now,
        not when each one's own availability times out (minutes later)."""
        if not payload:
            return
        try:
            offline = decode_z2m_availability(payload) is Availability.OFFLINE
        except MqttCodecError as exc:
            log.warning("%s: bad bridge state on %s: %s", self.device_id, topic, exc)
            return
        if offline:
            if not self._bridge_offline:
                self._availability_behind_bridge = self._snapshot.availability
            self._bridge_offline = True
            # Again after a reconnect: the retained offline comes back with it.
            self._publish(availability=Availability.OFFLINE, seen=False)
        elif self._bridge_offline:
            self._bridge_offline = False
            back = self._availability_behind_bridge
            self._publish(availability=back, seen=back is Availability.ONLINE)

    async def _request_state(self) -> None:
        # Zigbee2MQTT does not retain state unless told to: ask after every connect.
        payload = z2m_get_request(self.kind)
        if payload is None:
            return
        try:
            await self.connection.publish(f"{self.state_topic}/get", payload, qos=1)
        except TransportError as exc:
            log.debug("%s: state request not sent: %s", self.device_id, exc)


class MqttJsonLight(MqttDevice):
    """A light on the Home Assistant MQTT JSON schema."""

    def __init__(
        self, cfg: HaJsonLightDeviceConfig, connection: MqttConnection, device_id: str
    ) -> None:
        self.cfg = cfg
        super().__init__(device_id, DeviceKind.LIGHT, connection, cfg.command_topic)
        connection.subscribe(cfg.state_topic, self._on_ha_state)
        if cfg.availability_topic is not None:
            connection.subscribe(cfg.availability_topic, self._on_ha_availability)

    def _encode(self, command: Command) -> bytes:
        return encode_ha_json_light(command, self.cfg.brightness_scale, self.cfg.color_mode)

    def _decode(self, payload: bytes, previous: DeviceState) -> DeviceState:
        assert isinstance(previous, LightState)
        return decode_ha_json_light(payload, previous, self.cfg.brightness_scale)

    def _on_ha_state(self, topic: str, payload: bytes) -> None:
        self._on_state(self._decode, topic, payload)

    def _on_ha_availability(self, topic: str, payload: bytes) -> None:
        try:
            availability = decode_plain_availability(
                payload, self.cfg.payload_available, self.cfg.payload_not_available
            )
        except MqttCodecError as exc:
            log.warning("%s: bad availability on %s: %s", self.device_id, topic, exc)
            return
        self._on_availability(availability)


def build_mqtt_device(
    cfg: MqttDeviceConfig, connection: MqttConnection, device_id: str
) -> MqttDevice:
    """The device for one MQTT device config entry (``type`` selects the class)."""
    if isinstance(cfg, Zigbee2MqttDeviceConfig):
        return Zigbee2MqttDevice(cfg, connection, device_id)
    return MqttJsonLight(cfg, connection, device_id)
