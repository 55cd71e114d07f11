"""MQTT driver against a real Mosquitto: commands confirmed through the simulator,
timeouts, offline devices, broker restart, status topic and last will, config.

Every test uses its own uuid topic prefix and client ids, so runs in parallel
on the shared broker never see each other's messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiomqtt
import pytest
from pydantic import ValidationError

from drivers.backoff import backoff_delay
from drivers.errors import DeviceTimeout, DeviceUnavailable, TransportError, UnsupportedCommand
from drivers.model import (
    Availability,
    ClimateCommand,
    ClimateMode,
    ClimateState,
    DeviceKind,
    LightCommand,
    LightState,
    LockCommand,
    LockState,
    SensorState,
)
from drivers.mqtt.config import HaJsonLightDeviceConfig, MqttBrokerConfig, Zigbee2MqttDeviceConfig
from drivers.mqtt.connection import MqttConnection
from drivers.mqtt.devices import MqttDevice, build_mqtt_device
from drivers.mqtt.errors import MqttCredentialError
from drivers.mqtt.simulator import SimulatedZigbeeDevice, ZigbeeSimulator
from tests.conftest import REPO, Broker, MosquittoProcess

S = TypeVar("S", LightState, LockState, ClimateState, SensorState)

WAIT_S = 10.0  # upper bound for things that happen in milliseconds; not a speed assertion


async def wait_until(check: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.01)


def state_of(device: MqttDevice, cls: type[S]) -> S:
    state = device.snapshot().state
    assert isinstance(state, cls)
    return state


def broker_config(broker: Broker, base: str, **extra: Any) -> MqttBrokerConfig:
    return MqttBrokerConfig(
        host=broker.host,
        port=broker.port,
        zigbee2mqtt_base=base,
        reconnect_min_s=0.05,
        reconnect_max_s=0.5,
        **extra,
    )


def z2m(dev_id: str, kind: DeviceKind, name: str) -> Zigbee2MqttDeviceConfig:
    return Zigbee2MqttDeviceConfig(id=dev_id, kind=kind, type="zigbee2mqtt", friendly_name=name)


class Site:
    """A connection, a Zigbee simulator and devices built like the edge builds them."""

    def __init__(self, broker: Broker, **sim_options: Any) -> None:
        self.prefix = f"t{uuid.uuid4().hex[:12]}"
        self.base = f"{self.prefix}/z2m"
        self.cfg = broker_config(broker, self.base)
        self.conn = MqttConnection(self.cfg, site_id=self.prefix)
        self.sim = ZigbeeSimulator(
            broker.host, broker.port, base=self.base, clear_retained_on_stop=True, **sim_options
        )
        self.devices: dict[str, MqttDevice] = {}

    def add(self, kind: DeviceKind, name: str, *, simulated: bool = True) -> MqttDevice:
        if simulated:
            self.sim.devices[name] = SimulatedZigbeeDevice(kind, name)
        dev_id = name.replace("/", "-")
        device = build_mqtt_device(z2m(dev_id, kind, name), self.conn, f"room/{dev_id}")
        self.devices[name] = device
        return device

    async def online(self, name: str) -> MqttDevice:
        device = self.devices[name]
        await wait_until(
            lambda: device.snapshot().availability is Availability.ONLINE, f"{name} online"
        )
        return device


@contextlib.asynccontextmanager
async def running(site: Site) -> AsyncIterator[Site]:
    await site.sim.start()
    await site.conn.start()
    try:
        await asyncio.wait_for(site.conn.connected(), WAIT_S)
        yield site
    finally:
        await site.conn.stop()
        await site.sim.stop()
        await clear_retained(site.cfg, [site.conn.status_topic])


async def clear_retained(cfg: MqttBrokerConfig, topics: list[str]) -> None:
    with contextlib.suppress(aiomqtt.MqttError):
        async with aiomqtt.Client(cfg.host, cfg.port) as client:
            for topic in topics:
                await client.publish(topic, b"", qos=1, retain=True)


class Watcher:
    """A separate client that records every message on one topic."""

    def __init__(self, host: str, port: int, topic: str) -> None:
        self.client = aiomqtt.Client(host, port, identifier=f"watch-{uuid.uuid4().hex[:8]}")
        self.topic = topic
        self.seen: list[bytes] = []
        self._mark = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watcher:
        await self.client.__aenter__()
        await self.client.subscribe(self.topic, qos=1)
        self._task = asyncio.create_task(self._collect(), name="watcher")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.client.__aexit__(None, None, None)

    async def _collect(self) -> None:
        async for message in self.client.messages:
            payload = message.payload
            self.seen.append(payload if isinstance(payload, bytes) else b"")

    async def sees(self, payload: bytes) -> None:
        """Wait for ``payload`` after whatever the previous call saw."""
        await wait_until(lambda: payload in self.seen[self._mark :], f"{payload!r}")
        self._mark += self.seen[self._mark :].index(payload) + 1


# -- commands confirmed through the simulator -----------------------------------------
async def test_light_command_confirmed(mqtt_broker: Broker) -> None:
    site = Site(mqtt_broker)
    light = site.add(DeviceKind.LIGHT, "ceiling")
    async with running(site):
        await site.online("ceiling")
        await light.send(LightCommand(on=True, brightness=40, color_temp_k=2700), timeout=5)
        assert light.snapshot().state == LightState(on=True, brightness=40, color_temp_k=2703)
        assert site.sim.devices["ceiling"].commands[-1] == {
            "state": "ON",
            "brightness": 102,
            "color_temp": 370,
        }
        await light.send(LightCommand(on=False))
        state = light.snapshot().state
        assert isinstance(state, LightState) and state.on is False


async def test_lock_door_contact_and_jam(mqtt_broker: Broker) -> None:
    site = Site(mqtt_broker)
    lock = site.add(DeviceKind.LOCK, "entrance/door-lock")  # friendly names may nest
    async with running(site):
        await site.online("entrance/door-lock")
        await lock.send(LockCommand(locked=True))
        assert lock.snapshot().state == LockState(locked=True, door_open=False, jammed=False)
        await site.sim.update("entrance/door-lock", contact=False)
        await wait_until(lambda: state_of(lock, LockState).door_open is True, "door open")
        await site.sim.update("entrance/door-lock", lock_state="not_fully_locked")
        await wait_until(lambda: state_of(lock, LockState).jammed is True, "jammed")
        await lock.send(LockCommand(locked=False))
        assert lock.snapshot().state == LockState(locked=False, door_open=True, jammed=False)


async def test_thermostat_setpoint_and_heating(mqtt_broker: Broker) -> None:
    site = Site(mqtt_broker, tick_s=0.05, heat_rate_c_per_s=40.0)
    climate = site.add(DeviceKind.CLIMATE, "sauna")
    async with running(site):
        await site.online("sauna")
        await climate.send(ClimateCommand(mode=ClimateMode.HEAT, target_c=24.5))
        state = climate.snapshot().state
        assert isinstance(state, ClimateState)
        assert (state.mode, state.target_c, state.humidity) == (ClimateMode.HEAT, 24.5, 40.0)
        # the simulated room warms toward the setpoint, reported over MQTT
        await wait_until(
            lambda: climate.snapshot().state == ClimateState(ClimateMode.HEAT, 24.5, 24.5, 40.0),
            "room reaches setpoint",
        )


async def test_sensor_state_and_unsupported_commands(mqtt_broker: Broker) -> None:
    site = Site(mqtt_broker)
    sensor = site.add(DeviceKind.SENSOR, "hall-sensor")
    light = site.add(DeviceKind.LIGHT, "hall-light")
    async with running(site):
        await site.online("hall-sensor")
        await wait_until(
            lambda: state_of(sensor, SensorState).values.get("temperature") == 21.5, "reading"
        )
        with pytest.raises(UnsupportedCommand):
            await sensor.send(LightCommand(on=True))
        with pytest.raises(UnsupportedCommand):
            await light.send(LockCommand(locked=True))
        assert site.sim.devices["hall-light"].commands == []


async def test_malformed_state_is_dropped_not_fatal(mqtt_broker: Broker) -> None:
    site = Site(mqtt_broker)
    light = site.add(DeviceKind.LIGHT, "l1")
    async with running(site):
        await site.online("l1")
        before = light.snapshot().state
        for junk in (b"{not json", b'{"brightness": "max"}', b"[]"):
            await site.conn.publish(f"{site.base}/l1", junk)
        await site.conn.publish(f"{site.base}/l1/availability", b"sleepy")
        await light.send(LightCommand(on=True, brightness=10))  # still works afterwards
        assert light.snapshot().state != before
        assert light.snapshot().availability is Availability.ONLINE


# -- HA JSON light ----------------------------------------------------------------------------
async def ha_json_responder(host: str, port: int, cfg: HaJsonLightDeviceConfig) -> None:
    """A tiny light speaking the HA JSON schema, as ESPHome does."""
    assert cfg.availability_topic is not None
    state: dict[str, Any] = {"state": "OFF", "brightness": cfg.brightness_scale}
    will = aiomqtt.Will(cfg.availability_topic, cfg.payload_not_available, 1, True)
    async with aiomqtt.Client(host, port, will=will) as client:
        await client.subscribe(cfg.command_topic, qos=1)
        await client.publish(cfg.availability_topic, cfg.payload_available, 1, True)
        await client.publish(cfg.state_topic, json.dumps(state), 1, True)
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            state.update(json.loads(message.payload))
            await client.publish(cfg.state_topic, json.dumps(state), 1, True)


async def test_ha_json_light(mqtt_broker: Broker) -> None:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    cfg = HaJsonLightDeviceConfig(
        id="cove",
        kind=DeviceKind.LIGHT,
        type="mqtt_json",
        command_topic=f"{prefix}/cove/command",
        state_topic=f"{prefix}/cove/state",
        availability_topic=f"{prefix}/status",
        payload_available="up",
        payload_not_available="down",
        brightness_scale=100,
    )
    conn = MqttConnection(broker_config(mqtt_broker, "unused"), site_id=prefix)
    light = build_mqtt_device(cfg, conn, "room/cove")
    responder = asyncio.create_task(
        ha_json_responder(mqtt_broker.host, mqtt_broker.port, cfg), name="ha-json-light"
    )
    await conn.start()
    try:
        await wait_until(lambda: light.snapshot().availability is Availability.ONLINE, "online")
        await light.send(LightCommand(on=True, brightness=35, color_temp_k=3000))
        assert light.snapshot().state == LightState(on=True, brightness=35, color_temp_k=3003)
    finally:
        await conn.stop()
        responder.cancel()
        await asyncio.gather(responder, return_exceptions=True)
        await clear_retained(
            conn.config, [cfg.state_topic, cfg.availability_topic or "", conn.status_topic]
        )


# -- failures ------------------------------------------------------------
async def test_muted_and_unknown_devices_time_out(mqtt_broker: Broker) -> None:
    site = Site(mqtt_broker)
    light = site.add(DeviceKind.LIGHT, "mute-me")
    ghost = site.add(DeviceKind.LIGHT, "not-paired", simulated=False)
    async with running(site):
        await site.online("mute-me")
        await light.send(LightCommand(on=True))  # settles the reports sent on connect
        site.sim.mute("mute-me")
        # the last report already says ON; only a fresh report confirms
        with pytest.raises(DeviceTimeout):
            await light.send(LightCommand(on=True), timeout=0.3)
        with pytest.raises(DeviceTimeout):
            await light.send(LightCommand(on=False), timeout=0.3)
        with pytest.raises(DeviceTimeout):
            await ghost.send(LightCommand(on=True), timeout=0.3)
        assert ghost.snapshot().availability is Availability.UNKNOWN
        site.sim.mute("mute-me", False)
        await light.send(LightCommand(on=False))


async def test_offline_device_is_unavailable(mqtt_broker: Broker) -> None:
    site = Site(mqtt_broker)
    light = site.add(DeviceKind.LIGHT, "flaky")
    async with running(site):
        await site.online("flaky")
        await site.sim.go_offline("flaky")
        await wait_until(lambda: light.snapshot().availability is Availability.OFFLINE, "off")
        with pytest.raises(DeviceUnavailable):
            await light.send(LightCommand(on=True))
        assert site.sim.devices["flaky"].commands == []  # nothing was sent
        await site.sim.go_online("flaky")
        await site.online("flaky")
        await light.send(LightCommand(on=True))


async def test_publish_when_not_connected_is_transport_error(mqtt_broker: Broker) -> None:
    conn = MqttConnection(broker_config(mqtt_broker, "x"), site_id=f"t{uuid.uuid4().hex[:8]}")
    with pytest.raises(TransportError, match="not connected"):
        await conn.publish("x/y", b"1", wait_connected_s=0.05)
    light = build_mqtt_device(z2m("l", DeviceKind.LIGHT, "l"), conn, "r/l")
    with pytest.raises(TransportError):
        await light.send(LightCommand(on=True))
    await conn.stop()  # never started: still fine, and twice
    await conn.stop()


async def test_broker_restart(mosquitto: MosquittoProcess) -> None:
    site = Site(mosquitto.broker)
    light = site.add(DeviceKind.LIGHT, "survivor")
    connects: list[int] = []

    async def on_connect() -> None:
        connects.append(site.conn.connects)

    site.conn.add_on_connect(on_connect)
    async with running(site):
        await site.online("survivor")
        await light.send(LightCommand(on=True, brightness=20))
        await wait_until(lambda: connects == [1], "first on_connect")

        await asyncio.to_thread(mosquitto.stop)
        await asyncio.wait_for(site.conn.disconnected(), WAIT_S)
        assert light.snapshot().availability is Availability.UNKNOWN
        with pytest.raises(TransportError):
            await light.send(LightCommand(on=False))

        await asyncio.to_thread(mosquitto.start)  # same port, empty broker (no persistence)
        await asyncio.wait_for(site.conn.connected(), WAIT_S)
        await site.online("survivor")
        await wait_until(lambda: connects == [1, 2], "on_connect ran again")
        # subscriptions are back: a fresh report after the restart arrives
        await site.sim.update("survivor", brightness=254)
        await wait_until(lambda: state_of(light, LightState).brightness == 100, "fresh state")
        await light.send(LightCommand(on=False))
        assert state_of(light, LightState).on is False


async def test_late_subscribe_wildcards_and_a_failing_handler(mqtt_broker: Broker) -> None:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    conn = MqttConnection(broker_config(mqtt_broker, "x"), site_id=prefix)
    got: list[tuple[str, bytes]] = []

    def broken(topic: str, payload: bytes) -> None:
        raise RuntimeError("handler bug")

    await conn.start()
    try:
        await asyncio.wait_for(conn.connected(), WAIT_S)
        await conn.publish(f"{prefix}/sauna/temp", b"80", retain=True)
        # subscribed on the broker at once: the retained value arrives
        conn.subscribe(f"{prefix}/+/temp", broken)
        remove = conn.subscribe(f"{prefix}/+/temp", lambda t, p: got.append((t, p)))
        conn.subscribe(f"{prefix}/#", lambda t, p: got.append(("all", p)))
        # (a retained message comes once per matching SUBSCRIBE, so maybe twice)
        expected = {(f"{prefix}/sauna/temp", b"80"), ("all", b"80")}
        await wait_until(lambda: set(got) == expected, "both handlers")
        remove()
        await conn.publish(f"{prefix}/steam/temp", b"45")
        await wait_until(lambda: got[-1] == ("all", b"45"), "remaining handler")
        assert (f"{prefix}/steam/temp", b"45") not in got
    finally:
        await conn.stop()
        await clear_retained(conn.config, [conn.status_topic, f"{prefix}/sauna/temp"])


# -- status topic and last will ------------------------------------------------------------
async def test_status_online_then_offline_on_clean_stop(mqtt_broker: Broker) -> None:
    site = Site(mqtt_broker)
    async with Watcher(mqtt_broker.host, mqtt_broker.port, site.conn.status_topic) as watcher:
        async with running(site):
            await watcher.sees(b"online")
        await watcher.sees(b"offline")


LAST_WILL_SCRIPT = """
import asyncio, sys
from drivers.mqtt.config import MqttBrokerConfig
from drivers.mqtt.connection import MqttConnection

async def main() -> None:
    cfg = MqttBrokerConfig(host=sys.argv[1], port=int(sys.argv[2]), keepalive=5)
    conn = MqttConnection(cfg, site_id=sys.argv[3])
    await conn.start()
    await conn.connected()
    print("up", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_last_will_when_the_process_dies(mqtt_broker: Broker) -> None:
    site_id = f"t{uuid.uuid4().hex[:12]}"
    topic = f"coresync/{site_id}/status"
    cfg = broker_config(mqtt_broker, "x")
    async with Watcher(mqtt_broker.host, mqtt_broker.port, topic) as watcher:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            LAST_WILL_SCRIPT,
            mqtt_broker.host,
            str(mqtt_broker.port),
            site_id,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line.strip() == b"up"
            await watcher.sees(b"online")
            proc.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker must send the will
            await proc.wait()
            await watcher.sees(b"offline")
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await clear_retained(cfg, [topic])


# -- reconnect policy ------------------------------------------------------------
def test_backoff_is_random_growing_and_capped() -> None:
    rng = random.Random(7)
    samples = {a: [backoff_delay(a, 0.1, 5.0, rng) for _ in range(300)] for a in range(12)}
    for attempt, values in samples.items():
        cap = min(5.0, 0.1 * 2**attempt)
        assert all(0.0 <= v <= cap for v in values)
        assert len(set(values)) > 250  # random, not a fixed schedule
    assert max(samples[0]) < max(samples[3]) < max(samples[6])
    assert max(samples[11]) > 4.0  # reaches the cap ...
    assert max(backoff_delay(10_000, 0.1, 5.0, rng) for _ in range(100)) <= 5.0  # ... never past


# -- config ------------------------------------------------------------
def test_password_never_in_repr(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = "hunter2-" + uuid.uuid4().hex
    monkeypatch.setenv("CORESYNC_TEST_MQTT_PW", secret)
    cfg = MqttBrokerConfig(username="edge", password_env="CORESYNC_TEST_MQTT_PW")
    assert cfg.resolve_password() == secret
    for text in (repr(cfg), str(cfg), cfg.model_dump_json(), repr(cfg.resolve_secret())):
        assert secret not in text
    conn = MqttConnection(cfg, site_id="spa")
    assert secret not in repr(vars(conn))

    (tmp_path / "mqtt-password").write_text(secret + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    cred = MqttBrokerConfig(username="edge", password_credential="mqtt-password")
    assert cred.resolve_password() == secret
    assert secret not in repr(cred)
    assert conn.client_id == "coresync-spa"


def test_missing_password_source_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CORESYNC_NO_SUCH_VAR", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    cfg = MqttBrokerConfig(username="u", password_env="CORESYNC_NO_SUCH_VAR")
    with pytest.raises(MqttCredentialError, match="password_env"):
        cfg.resolve_password()
    cred = MqttBrokerConfig(username="u", password_credential="mqtt-password")
    with pytest.raises(MqttCredentialError, match="password_credential"):
        cred.resolve_password()
    assert MqttBrokerConfig().resolve_password() is None


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"password_env": "A", "password_credential": "b", "username": "u"}, "at most one"),
        ({"password_env": "A"}, "username"),
        ({"ca_file": "/etc/ca.pem"}, "tls"),
        ({"reconnect_min_s": 5, "reconnect_max_s": 1}, "reconnect_min_s"),
        ({"zigbee2mqtt_base": "z2m/#"}, "zigbee2mqtt_base"),
        ({"password": "plain"}, "password"),
        ({"password_env": "BAD-NAME", "username": "u"}, "password_env"),
    ],
)
def test_broker_config_rejects(data: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        MqttBrokerConfig(**data)


def test_device_configs_reject() -> None:
    with pytest.raises(ValidationError, match="kind = 'light'"):
        HaJsonLightDeviceConfig(
            id="x", kind=DeviceKind.LOCK, type="mqtt_json", command_topic="a", state_topic="b"
        )
    with pytest.raises(ValidationError, match="command_topic"):
        HaJsonLightDeviceConfig(
            id="x", kind=DeviceKind.LIGHT, type="mqtt_json", command_topic="a/+", state_topic="b"
        )
    with pytest.raises(ValidationError, match="friendly_name"):
        z2m("x", DeviceKind.LIGHT, "lights/#")
    with pytest.raises(ValidationError, match="friendly_name"):
        z2m("x", DeviceKind.LIGHT, "lamp/set")


async def test_two_nodes_of_one_site_keep_their_own_client_ids(mqtt_broker: Broker) -> None:
    """Issue #13 makes two nodes per site normal; on one broker, one default
    client id would make the broker drop each for the other in a loop."""
    site_id = f"t{uuid.uuid4().hex[:8]}"
    cfg = broker_config(mqtt_broker, "x")
    first = MqttConnection(cfg, site_id=site_id, node_id="front")
    second = MqttConnection(cfg, site_id=site_id, node_id="annex")
    assert (first.client_id, second.client_id) == (
        f"coresync-{site_id}-front",
        f"coresync-{site_id}-annex",
    )
    assert MqttConnection(cfg, site_id=site_id).client_id == f"coresync-{site_id}"
    got: list[tuple[str, bytes]] = []
    await first.start()
    try:
        await asyncio.wait_for(first.connected(), WAIT_S)
        first.subscribe(f"{site_id}/ping/#", lambda t, p: got.append((t, p)))
        await second.start()
        await asyncio.wait_for(second.connected(), WAIT_S)
        second.subscribe(f"{site_id}/ping/#", lambda t, p: got.append((t, p)))
        # a round trip each way through the broker: a client-id take-over would
        # have dropped the first connection before these arrive
        await second.publish(f"{site_id}/ping/a", b"1")
        await first.publish(f"{site_id}/ping/b", b"2")
        await wait_until(lambda: len(got) == 4, "both messages at both nodes")
        assert (first.connects, second.connects) == (1, 1)
    finally:
        await second.stop()
        await first.stop()
        await clear_retained(cfg, [first.status_topic])


async def test_a_frozen_broker_is_noticed_and_does_not_hold_a_stop(
    mosquitto: MosquittoProcess,
) -> None:
    """A broker that stops answering with its socket still open (its process
    frozen, a hung host behind a live switch): the keepalive notices it, the
    connection reconnects once the broker answers again, and stopping while it
    is frozen ends (the last-will publish is bounded) instead of hanging."""
    conn = MqttConnection(broker_config(mosquitto.broker, "frozen", keepalive=5), site_id="frz")
    await conn.start()
    assert mosquitto.proc is not None
    pid = mosquitto.proc.pid
    try:
        await asyncio.wait_for(conn.connected(), WAIT_S)
        os.kill(pid, signal.SIGSTOP)
        await asyncio.wait_for(conn.disconnected(), 30)  # paho: 1.5 x keepalive unanswered
        os.kill(pid, signal.SIGCONT)
        await asyncio.wait_for(conn.connected(), 30)
        assert conn.connects == 2
        os.kill(pid, signal.SIGSTOP)
        await asyncio.wait_for(conn.stop(), 30)
    finally:
        os.kill(pid, signal.SIGCONT)
        await conn.stop()
