"""The daemon end to end against real parts: Mosquitto, a pymodbus gateway,
Zigbee2MQTT-style simulated devices, a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

from drivers.modbus.simulator import ThermostatGateway
from drivers.model import Availability, ClimateMode, ClimateState, LightState
from drivers.mqtt.simulator import ZigbeeSimulator
from edge.config import SiteConfig, parse_config
from edge.core import Actor, EdgeCore
from edge.demo.broker import free_port
from edge.errors import LimitViolation, NotFound
from edge.service import EdgeService
from tests.conftest import Broker, MosquittoProcess
from tests.edge_site import start_edge, wait_until

STAFF = Actor("staff", "test")

SITE = """\
[site]
id = "{site}"
name = "Test spa"

[mqtt]
host = "{host}"
port = {port}
zigbee2mqtt_base = "{base}"
reconnect_min_s = 0.1
reconnect_max_s = 1.0

[[modbus_buses]]
id = "gw"
type = "tcp"
host = "127.0.0.1"
port = {modbus_port}

[[rooms]]
id = "room"
name = "Treatment"
  [[rooms.devices]]
  id = "ceiling"
  kind = "light"
  type = "zigbee2mqtt"
  friendly_name = "ceiling"
  limits = {{ max_brightness = 80 }}
  [[rooms.devices]]
  id = "accent"
  kind = "light"
  type = "zigbee2mqtt"
  friendly_name = "accent"
  [[rooms.devices]]
  id = "thermostat"
  kind = "climate"
  type = "modbus"
  bus = "gw"
  unit = 1
  poll_interval_s = 0.2
  mode_values = {{ off = 0, heat = 1, cool = 2, auto = 3 }}
  [rooms.devices.registers]
  mode = {{ table = "holding", address = 0, dtype = "uint16" }}
  target_c = {{ table = "holding", address = 1, dtype = "int16", scale = 0.1, writable = true }}
  current_c = {{ table = "input", address = 0, dtype = "int16", scale = 0.1 }}
  humidity = {{ table = "input", address = 1, dtype = "uint16", scale = 0.1 }}
  [[rooms.scenes]]
  id = "relax"
  name = "Relax"
  devices.ceiling = {{ on = true, brightness = 30, color_temp_k = 2700 }}
  devices.accent = {{ on = true, brightness = 50 }}
  devices.thermostat = {{ mode = "heat", target_c = 24.5 }}

[[rooms]]
id = "sauna"
name = "Sauna"
  [[rooms.devices]]
  id = "heater"
  kind = "climate"
  type = "zigbee2mqtt"
  friendly_name = "sauna_heater"
  heater = true
  limits.min_target_c = 60
  limits.max_target_c = 90
  limits.hard_max_c = 95
  limits.auto_off_minutes = {auto_off}
  limits.unknown_temp_grace_s = {unknown_grace}
  [[rooms.devices]]
  id = "door"
  kind = "lock"
  type = "zigbee2mqtt"
  friendly_name = "door"
"""


@dataclass
class Site:
    config: SiteConfig
    service: EdgeService
    core: EdgeCore
    zigbee: ZigbeeSimulator
    gateway: ThermostatGateway
    broker: Broker
    base: str


def make_config(
    broker: Broker, modbus_port: int, *, auto_off: float = 60, unknown_grace: float = 30
) -> SiteConfig:
    tag = uuid.uuid4().hex[:8]
    text = SITE.format(
        site=f"test-{tag}",
        host=broker.host,
        port=broker.port,
        base=f"test-z2m-{tag}",
        modbus_port=modbus_port,
        auto_off=auto_off,
        unknown_grace=unknown_grace,
    )
    return parse_config(text)


async def start_site(broker: Broker, tmp: Path, **kw: float) -> Site:
    gateway = ThermostatGateway(host="127.0.0.1", port=free_port(), units=[1])
    await gateway.start()
    cfg = make_config(broker, gateway.port, **kw)
    assert cfg.mqtt is not None
    zigbee, service, core = await start_edge(cfg, broker, tmp)
    return Site(cfg, service, core, zigbee, gateway, broker, cfg.mqtt.zigbee2mqtt_base)


async def stop_site(site: Site) -> None:
    await site.service.stop()
    await site.zigbee.stop()
    await site.gateway.stop()


@pytest.fixture
async def site(mqtt_broker: Broker, tmp_path: Path) -> AsyncIterator[Site]:
    s = await start_site(mqtt_broker, tmp_path)
    try:
        yield s
    finally:
        await stop_site(s)


async def test_scene_sets_every_device_and_is_logged(site: Site) -> None:
    result = await site.core.activate_scene("room", "relax", STAFF)
    assert result.ok, result.as_dict()
    assert {o.device_id for o in result.outcomes} == {
        "room/ceiling",
        "room/accent",
        "room/thermostat",
    }
    room = site.core.room("room")
    assert (
        room.devices["ceiling"].snapshot().state
        == LightState(on=True, brightness=30, color_temp_k=2700)
        or room.devices["ceiling"].snapshot().state.brightness == 30
    )  # type: ignore[union-attr]
    thermo = room.devices["thermostat"].snapshot().state
    assert isinstance(thermo, ClimateState)
    assert thermo.mode is ClimateMode.HEAT and thermo.target_c == pytest.approx(24.5)
    log = await site.core.store.commands()
    assert {r["device_id"] for r in log if r["scene_id"] == "relax"} == {
        "room/ceiling",
        "room/accent",
        "room/thermostat",
    }
    assert all(r["actor_kind"] == "staff" and r["result"] == "ok" for r in log)


async def test_scene_with_one_failing_device_names_it(site: Site) -> None:
    site.zigbee.mute("accent")
    site.core.command_timeout_s = 1.0
    result = await site.core.activate_scene("room", "relax", STAFF)
    assert not result.ok
    assert [o.device_id for o in result.failed] == ["room/accent"]
    assert result.failed[0].result == "timeout"
    assert {o.device_id for o in result.outcomes if o.ok} == {"room/ceiling", "room/thermostat"}


async def test_out_of_limits_rejected_before_anything_is_sent(site: Site) -> None:
    seen: list[str] = []
    async with aiomqtt.Client(site.broker.host, site.broker.port) as client:
        await client.subscribe(f"{site.base}/+/set")

        async def collect() -> None:
            async for msg in client.messages:
                seen.append(str(msg.topic))

        task = asyncio.create_task(collect(), name="collect-set")
        try:
            with pytest.raises(LimitViolation) as info:
                await site.core.command("room", "ceiling", {"brightness": 95}, STAFF)
            assert info.value.field == "brightness"
            with pytest.raises(LimitViolation):
                await site.core.command("sauna", "heater", {"target_c": 120}, STAFF)
            with pytest.raises(NotFound):
                await site.core.command("room", "nope", {"on": True}, STAFF)
            assert await site.core.store.commands() == []
            # A valid command after them: the broker delivers one publisher's
            # messages in order, so once its /set arrives nothing else went out.
            await site.core.command("room", "accent", {"on": True}, STAFF)
            await wait_until(lambda: bool(seen))
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert seen == [f"{site.base}/accent/set"], seen


async def test_scene_over_mqtt_and_retained_room_state(site: Site) -> None:
    site_id = site.config.site.id
    async with aiomqtt.Client(site.broker.host, site.broker.port) as client:
        await client.subscribe(f"coresync/{site_id}/rooms/room/scene/result")
        await client.subscribe(f"coresync/{site_id}/status")
        await client.publish(f"coresync/{site_id}/rooms/room/scene/set", b"relax", qos=1)
        result = None
        status = None
        async with asyncio.timeout(10):
            async for msg in client.messages:
                if str(msg.topic).endswith("/status"):
                    status = msg.payload
                else:
                    result = json.loads(msg.payload)  # type: ignore[arg-type]
                if result is not None and status is not None:
                    break
        assert status == b"online"
        assert result is not None and result["ok"] and result["scene_id"] == "relax"
        await client.publish(f"coresync/{site_id}/rooms/room/scene/set", b"nope", qos=1)
        async with asyncio.timeout(10):
            async for msg in client.messages:
                if str(msg.topic).endswith("/scene/result"):
                    refused = json.loads(msg.payload)  # type: ignore[arg-type]
                    break
        assert refused["ok"] is False and "nope" in refused["error"]
    # A fresh client gets the retained room state, showing the scene's values.
    async with aiomqtt.Client(site.broker.host, site.broker.port) as client:
        await client.subscribe(f"coresync/{site_id}/rooms/room/state")
        async with asyncio.timeout(5):
            async for msg in client.messages:
                state = json.loads(msg.payload)  # type: ignore[arg-type]
                if state["devices"]["ceiling"]["state"]["brightness"] == 30:
                    break


async def test_state_persisted_to_sqlite(site: Site) -> None:
    await site.core.command("room", "accent", {"on": True, "brightness": 42}, STAFF)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while True:  # persistence is asynchronous: poll the file, not a fixed sleep
        states = await site.core.store.load_states()
        if states["room/accent"].state.brightness == 42:  # type: ignore[union-attr]
            break
        assert loop.time() < deadline, f"state never persisted: {states['room/accent']}"
        await asyncio.sleep(0.05)


async def test_heater_guard_turns_off_above_hard_max(site: Site) -> None:
    outcome = await site.core.command("sauna", "heater", {"mode": "heat", "target_c": 85}, STAFF)
    assert outcome.ok, outcome
    alerts = site.core.events.subscribe(types={"alert"})
    # The heater itself reports an overheat (as a faulty thermostat would).
    await site.zigbee.update("sauna_heater", local_temperature=99.0)
    event = await asyncio.wait_for(alerts.get(), 10)
    assert "hard maximum" in event.data["message"]
    heater = site.core.room("sauna").devices["heater"]
    await wait_until(lambda: heater.snapshot().state.mode is ClimateMode.OFF, 10)  # type: ignore[union-attr]
    # A safety command never waits on its log row: it is written just after.
    await wait_until(lambda: site.core.command_spool.pending == 0, 10)
    log = await site.core.store.commands(device_id="sauna/heater")
    assert log[0]["actor_kind"] == "safety" and log[0]["command"] == {"mode": "off"}


async def test_heater_auto_off(mqtt_broker: Broker, tmp_path: Path) -> None:
    s = await start_site(mqtt_broker, tmp_path, auto_off=0.02)  # 1.2 s
    try:
        await s.core.command("sauna", "heater", {"mode": "heat", "target_c": 70}, STAFF)
        heater = s.core.room("sauna").devices["heater"]
        await wait_until(lambda: heater.snapshot().state.mode is ClimateMode.OFF, 10)  # type: ignore[union-attr]
    finally:
        await stop_site(s)


async def test_heater_auto_off_holds_across_a_wall_clock_jump_back(
    mqtt_broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clock is stepped back an hour (NTP, an RTC corrected) mid-session:
    the limit is still measured from when heating started, not stretched."""
    import time as real_time
    from types import SimpleNamespace

    import edge.safety.heater as heater_module

    offset = 0.0
    monkeypatch.setattr(
        heater_module,
        "time",
        SimpleNamespace(time=lambda: real_time.time() - offset, monotonic=real_time.monotonic),
    )
    s = await start_site(mqtt_broker, tmp_path, auto_off=0.02)  # 1.2 s
    try:
        await s.core.command("sauna", "heater", {"mode": "heat", "target_c": 70}, STAFF)
        heater = s.core.room("sauna").devices["heater"]
        offset = 3600.0  # the wall clock jumps back one hour
        await wait_until(lambda: heater.snapshot().state.mode is ClimateMode.OFF, 10)  # type: ignore[union-attr]
    finally:
        await stop_site(s)


async def test_broker_restart_reconnects_and_republishes(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    s = await start_site(mosquitto.broker, tmp_path)
    try:
        mosquitto.stop()
        ceiling = s.core.room("room").devices["ceiling"]
        await wait_until(lambda: ceiling.snapshot().availability is not Availability.ONLINE, 10)
        mosquitto.start()  # same port, no persistence: retained state is gone
        await wait_until(lambda: ceiling.snapshot().availability is Availability.ONLINE, 15)
        outcome = await s.core.command("room", "ceiling", {"on": True, "brightness": 20}, STAFF)
        assert outcome.ok, outcome
        site_id = s.config.site.id
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
            await client.subscribe(f"coresync/{site_id}/rooms/room/state")
            await client.subscribe(f"coresync/{site_id}/status")
            got: dict[str, bytes] = {}
            async with asyncio.timeout(10):
                async for msg in client.messages:
                    got[str(msg.topic)] = msg.payload  # type: ignore[assignment]
                    if len(got) == 2:
                        break
        assert got[f"coresync/{site_id}/status"] == b"online"
    finally:
        await stop_site(s)


async def test_stop_twice_and_offline_status(mqtt_broker: Broker, tmp_path: Path) -> None:
    s = await start_site(mqtt_broker, tmp_path)
    site_id = s.config.site.id
    await stop_site(s)
    await s.service.stop()  # second call is harmless
    async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port) as client:
        await client.subscribe(f"coresync/{site_id}/status")
        async with asyncio.timeout(5):
            async for msg in client.messages:
                assert msg.payload == b"offline"
                break


async def test_one_daemon_per_data_dir(site: Site, tmp_path: Path) -> None:
    from edge.ops.errors import DataDirBusy

    second = EdgeService(site.config, data_dir=tmp_path, with_api=False)
    with pytest.raises(DataDirBusy):
        await second.start()


async def test_start_fails_clearly_when_the_api_port_is_taken(
    mqtt_broker: Broker, tmp_path: Path
) -> None:
    import socket

    from edge.api.settings import ApiSettings

    cfg = make_config(mqtt_broker, free_port())  # no gateway: Modbus just stays offline
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = EdgeService(
            cfg,
            data_dir=tmp_path,
            api_settings=ApiSettings(host="127.0.0.1", port=port, zeroconf=False),
        )
        try:
            with pytest.raises(RuntimeError, match="failed while starting"):
                await asyncio.wait_for(service.start(), 20)
        finally:
            await service.stop()
