"""Home Assistant MQTT discovery on the real Mosquitto, against simulated
Zigbee2MQTT devices (drivers/mqtt/simulator.py) and a real EdgeService.

Every config is checked against Home Assistant's MQTT discovery schema for
its component (required keys, no key HA does not know, unique ids), every
state topic it names holds a retained message whose templates render (jinja2,
Home Assistant's template engine) to a payload HA accepts, and commands
published on the discovered command topics move the simulated devices.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import jinja2
import pytest

from drivers.model import Availability, Device
from drivers.mqtt.simulator import ZigbeeSimulator
from edge.config import SiteConfig, parse_config
from edge.core import EdgeCore
from edge.errors import ConfigError
from edge.service import EdgeService
from tests.conftest import Broker
from tests.edge_site import start_edge, wait_until

# Home Assistant's MQTT discovery schema, per component: keys it requires and
# every key of it this project uses being one HA knows (homeassistant/
# components/mqtt/<component>.py PLATFORM_SCHEMA_MODERN + MQTT_ENTITY_COMMON).
COMMON = {
    "name", "unique_id", "object_id", "availability", "availability_mode", "device",
    "origin", "icon", "device_class", "entity_category", "enabled_by_default",
}  # fmt: skip
SCHEMA: dict[str, tuple[set[str], set[str]]] = {
    "button": ({"command_topic"}, {"command_topic", "payload_press", "qos", "retain"}),
    "light": (
        {"command_topic"},
        {
            "command_topic", "payload_on", "payload_off", "state_topic", "state_value_template",
            "brightness_command_topic", "brightness_command_template", "brightness_state_topic",
            "brightness_value_template", "brightness_scale", "on_command_type",
        },
    ),
    "climate": (
        set(),
        {
            "modes", "mode_command_topic", "mode_command_template", "mode_state_topic",
            "mode_state_template", "temperature_command_topic", "temperature_command_template",
            "temperature_state_topic", "temperature_state_template", "current_temperature_topic",
            "current_temperature_template", "current_humidity_topic", "current_humidity_template",
            "min_temp", "max_temp", "temp_step", "temperature_unit",
        },
    ),
    "lock": (
        {"command_topic"},
        {"command_topic", "payload_lock", "payload_unlock", "state_topic", "value_template"},
    ),
    "binary_sensor": ({"state_topic"}, {"state_topic", "value_template"}),
    "sensor": (
        {"state_topic"},
        {"state_topic", "value_template", "state_class", "unit_of_measurement"},
    ),
}  # fmt: skip
HA_MODES = {"off", "heat", "cool", "auto", "dry", "fan_only", "heat_cool"}
# What each state template must render to for HA to take it.
ACCEPTED = {
    ("light", "state_value_template"): {"ON", "OFF", "None"},
    ("lock", "value_template"): {"LOCKED", "UNLOCKED", "JAMMED", "None"},
    ("binary_sensor", "value_template"): {"ON", "OFF", "None"},
}
JINJA = jinja2.Environment(undefined=jinja2.StrictUndefined)


def site_text(uid: str, prefix: str, *, with_lobby: bool = True) -> str:
    lobby = f"""
[[rooms]]
id = "lobby"
name = "Lobby"
  [[rooms.devices]]
  id = "lamp"
  kind = "light"
  type = "zigbee2mqtt"
  friendly_name = "lobby_lamp_{uid}"
"""
    return f"""
[site]
id = "ha-{uid}"
name = "HA test spa"
timezone = "UTC"

[mqtt]
zigbee2mqtt_base = "z2m-{uid}"

[home_assistant]
discovery_prefix = "{prefix}"
lock_commands = ["spa-1/locker"]

[[rooms]]
id = "spa-1"
name = "Spa suite"
  [[rooms.devices]]
  id = "ceiling"
  kind = "light"
  name = "Ceiling"
  type = "zigbee2mqtt"
  friendly_name = "ceiling_{uid}"
  [[rooms.devices]]
  id = "thermostat"
  kind = "climate"
  type = "zigbee2mqtt"
  friendly_name = "thermostat_{uid}"
  [[rooms.devices]]
  id = "locker"
  kind = "lock"
  type = "zigbee2mqtt"
  friendly_name = "locker_{uid}"
  [[rooms.devices]]
  id = "back-door"
  kind = "lock"
  type = "zigbee2mqtt"
  friendly_name = "back_door_{uid}"
  [[rooms.devices]]
  id = "air"
  kind = "sensor"
  type = "zigbee2mqtt"
  friendly_name = "air_{uid}"
  [[rooms.scenes]]
  id = "relax"
  name = "Relax"
  devices.ceiling = {{ on = true, brightness = 30 }}
{lobby if with_lobby else ""}
"""


def config_for(uid: str, prefix: str, broker: Broker, **kw: Any) -> SiteConfig:
    cfg = parse_config(site_text(uid, prefix, **kw))
    assert cfg.mqtt is not None
    return cfg.model_copy(
        update={"mqtt": cfg.mqtt.model_copy(update={"host": broker.host, "port": broker.port})}
    )


@dataclass
class Site:
    uid: str
    prefix: str
    cfg: SiteConfig
    zigbee: ZigbeeSimulator
    service: EdgeService
    core: EdgeCore


@pytest.fixture
async def site(mqtt_broker: Broker, tmp_path: Path) -> AsyncIterator[Site]:
    uid = uuid.uuid4().hex[:8]
    prefix = f"ha-test-{uid}"
    cfg = config_for(uid, prefix, mqtt_broker)
    zigbee, service, core = await start_edge(cfg, mqtt_broker, tmp_path / "data")
    try:
        yield Site(uid, prefix, cfg, zigbee, service, core)
    finally:
        await service.stop()
        await zigbee.stop()


async def retained(broker: Broker, filters: list[str], until: Any) -> dict[str, bytes]:
    """Messages on ``filters`` (retained ones first) until ``until(seen)`` holds."""
    seen: dict[str, bytes] = {}
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.subscribe([(f, 1) for f in filters])
        async with asyncio.timeout(20):
            async for msg in client.messages:
                seen[str(msg.topic)] = bytes(msg.payload)  # type: ignore[arg-type]
                if until(seen):
                    return seen
    raise AssertionError("unreachable")


async def retained_now(broker: Broker, topic: str) -> bytes | None:
    """The broker's retained message on ``topic`` right now (None: none).
    Retained messages come right after SUBACK, so before our own marker."""
    marker = f"ha-test-marker/{uuid.uuid4().hex}"
    found: bytes | None = None
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.subscribe([(topic, 1), (marker, 1)])
        await client.publish(marker, b"x", qos=1)
        async with asyncio.timeout(10):
            async for msg in client.messages:
                if str(msg.topic) == marker:
                    return found
                found = bytes(msg.payload)  # type: ignore[arg-type]
    raise AssertionError("unreachable")


def configs_of(seen: dict[str, bytes], prefix: str) -> dict[str, dict[str, Any]]:
    return {t: json.loads(p) for t, p in seen.items() if t.startswith(prefix + "/") and p}


def render(template: str, payload: bytes) -> str:
    return JINJA.from_string(template).render(value_json=json.loads(payload)).strip()


async def test_every_room_is_discovered_valid_and_commands_move_devices(
    site: Site, mqtt_broker: Broker
) -> None:
    site_id = site.cfg.site.id
    # The sensor's values are announced once it reported them.
    await wait_until(lambda: bool(site.core.room("spa-1").devices["air"].snapshot().state))

    def complete(seen: dict[str, bytes]) -> bool:
        kinds = [t.split("/")[1] for t in configs_of(seen, site.prefix)]
        return (
            {"button", "light", "climate", "lock", "binary_sensor"} <= set(kinds)
            and kinds.count("sensor") >= 3  # temperature, humidity, battery
            and kinds.count("light") == 2
            and f"coresync/{site_id}/rooms/lobby/state" in seen
        )

    seen = await retained(mqtt_broker, [f"{site.prefix}/#", f"coresync/{site_id}/#"], complete)
    configs = configs_of(seen, site.prefix)
    unique_ids = [c["unique_id"] for c in configs.values()]
    assert len(unique_ids) == len(set(unique_ids)), "unique ids repeat"
    node = f"coresync_{site_id}"
    for topic, config in configs.items():
        prefix, component, node_id, obj, tail = topic.split("/")
        assert (prefix, node_id, tail) == (site.prefix, node, "config"), topic
        assert obj.replace("_", "").replace("-", "").isalnum(), topic
        required, allowed = SCHEMA[component]
        assert required <= set(config), f"{topic} lacks {required - set(config)}"
        unknown = set(config) - allowed - COMMON
        assert not unknown, f"{topic}: keys Home Assistant does not know: {unknown}"
        assert config["availability_mode"] == "all"
        availability = config["availability"]
        assert availability[0] == {"topic": f"coresync/{site_id}/status"}
        assert seen[f"coresync/{site_id}/status"] == b"online"
        for entry in availability[1:]:
            assert render(entry["value_template"], seen[entry["topic"]]) == "online", topic
        # Every state topic holds a retained message its templates render.
        for key, value in config.items():
            if key.endswith("_topic") and "command" not in key:
                assert value in seen, f"{topic}: {key} {value} holds nothing"
        for key, value in config.items():
            if key.endswith(("_template",)) and "command" not in key:
                state_key = (
                    "state_topic"
                    if key in ("value_template", "state_value_template")
                    else key.replace("_value_template", "_state_topic")
                    .replace("_state_template", "_state_topic")
                    .replace("current_temperature_template", "current_temperature_topic")
                    .replace("current_humidity_template", "current_humidity_topic")
                )
                rendered = render(value, seen[config[state_key]])
                if (component, key) in ACCEPTED:
                    assert rendered in ACCEPTED[(component, key)], (topic, key, rendered)
                elif key == "mode_state_template":
                    assert rendered in HA_MODES and rendered in config["modes"], rendered
                else:
                    float(rendered)  # numbers: brightness, temperatures, sensor values
        if component == "climate":
            assert set(config["modes"]) <= HA_MODES

    by_name = {(t.split("/")[1], c["name"]): c for t, c in configs.items()}
    sim = site.zigbee.devices
    # The light: HA's "on" payload, then a brightness through its template.
    light = by_name[("light", "Ceiling")]
    async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port) as ha:
        await ha.publish(light["command_topic"], light["payload_on"], qos=1)
        await wait_until(lambda: sim[f"ceiling_{site.uid}"].state["state"] == "ON")
        body = JINJA.from_string(light["brightness_command_template"]).render(value=40)
        await ha.publish(light["brightness_command_topic"], body, qos=1)
        await wait_until(lambda: sim[f"ceiling_{site.uid}"].state["brightness"] in (101, 102))
        # The thermostat: mode and setpoint through their templates.
        climate = next(c for (k, _), c in by_name.items() if k == "climate")
        body = JINJA.from_string(climate["mode_command_template"]).render(value="heat")
        await ha.publish(climate["mode_command_topic"], body, qos=1)
        await wait_until(lambda: sim[f"thermostat_{site.uid}"].state["system_mode"] == "heat")
        body = JINJA.from_string(climate["temperature_command_template"]).render(value=23.5)
        await ha.publish(climate["temperature_command_topic"], body, qos=1)
        thermostat = sim[f"thermostat_{site.uid}"]
        await wait_until(lambda: thermostat.state["occupied_heating_setpoint"] == 23.5)
        # The exposed lock unlocks; the other one is read-only and refuses.
        lock = next(c for (k, _), c in by_name.items() if k == "lock")
        await ha.publish(lock["command_topic"], lock["payload_unlock"], qos=1)
        await wait_until(lambda: sim[f"locker_{site.uid}"].state["state"] == "UNLOCKED")
        await ha.subscribe(f"coresync/{site_id}/rooms/spa-1/devices/back-door/result")
        await ha.publish(
            f"coresync/{site_id}/rooms/spa-1/devices/back-door/set", '{"locked": false}', qos=1
        )
        async with asyncio.timeout(10):
            async for msg in ha.messages:
                result = json.loads(msg.payload)  # type: ignore[arg-type]
                break
        assert result["ok"] is False and "not enabled" in result["error"]
        assert sim[f"back_door_{site.uid}"].state["state"] == "LOCKED"
        # A scene button runs the scene through the core (its limits included).
        button = by_name[("button", "Relax")]
        await ha.publish(light["command_topic"], light["payload_off"], qos=1)
        await wait_until(lambda: sim[f"ceiling_{site.uid}"].state["state"] == "OFF")
        await ha.publish(button["command_topic"], button["payload_press"], qos=1)
        await wait_until(lambda: sim[f"ceiling_{site.uid}"].state["state"] == "ON")
    commands = await site.core.store.commands()
    assert any(c["actor_kind"] == "mqtt" for c in commands), commands[-3:]


async def test_a_removed_device_loses_its_config(mqtt_broker: Broker, tmp_path: Path) -> None:
    uid = uuid.uuid4().hex[:8]
    prefix = f"ha-test-{uid}"
    lamp = f"{prefix}/light/coresync_ha-{uid}/"
    before = config_for(uid, prefix, mqtt_broker)
    zigbee, service, _ = await start_edge(before, mqtt_broker, tmp_path / "data")
    try:
        seen = await retained(
            mqtt_broker, [f"{prefix}/#"], lambda s: any(t.startswith(lamp + "lobby_") for t in s)
        )
        await service.stop()
        lobby_topic = next(t for t in seen if t.startswith(lamp + "lobby_"))
        # The same site without its lobby: the lamp's retained config is cleared.
        after = config_for(uid, prefix, mqtt_broker, with_lobby=False)
        service = EdgeService(after, data_dir=tmp_path / "data", with_api=False)
        await service.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while await retained_now(mqtt_broker, lobby_topic) is not None:
            assert loop.time() < deadline, f"{lobby_topic} still retained"
            await asyncio.sleep(0.05)
        # What the site still has stays.
        kept = await retained(
            mqtt_broker, [f"{prefix}/#"], lambda s: len(configs_of(s, prefix)) >= 6
        )
        assert lobby_topic not in configs_of(kept, prefix)
        assert any("_ceiling_" in t for t in configs_of(kept, prefix))
    finally:
        await service.stop()
        await zigbee.stop()


def all_are(devices: list[Device], availability: Availability) -> bool:
    return all(d.snapshot().availability is availability for d in devices)


async def test_zigbee2mqtt_bridge_offline_marks_its_devices_unavailable_at_once(
    site: Site, mqtt_broker: Broker
) -> None:
    devices = [d for _, d in site.core.all_devices()]
    bridge = f"z2m-{site.uid}/bridge/state"
    async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port) as z2m:
        # What the broker publishes for Zigbee2MQTT's last will.
        await z2m.publish(bridge, '{"state":"offline"}', qos=1, retain=True)
        await wait_until(
            lambda: all(d.snapshot().availability is Availability.OFFLINE for d in devices)
        )
        room = await retained(
            mqtt_broker,
            [f"coresync/{site.cfg.site.id}/rooms/spa-1/state"],
            lambda s: all(
                d["availability"] == "offline"
                for p in s.values()
                for d in json.loads(p)["devices"].values()
            ),
        )
        assert room
        await z2m.publish(bridge, '{"state":"online"}', qos=1, retain=True)
        await wait_until(
            lambda: all(d.snapshot().availability is Availability.ONLINE for d in devices)
        )


def test_lock_commands_name_a_lock_and_never_the_door(tmp_path: Path) -> None:
    text = site_text("cfg", "homeassistant", with_lobby=True)

    def problems(lock_commands: str, extra: str = "") -> list[str]:
        body = text.replace('lock_commands = ["spa-1/locker"]', f"lock_commands = {lock_commands}")
        with pytest.raises(ConfigError) as info:
            parse_config(body + extra, "site.toml")
        return info.value.problems

    (bad,) = problems('["spa-1/ceiling"]')
    assert "site.toml:" in bad and "home_assistant.lock_commands" in bad
    assert "'spa-1/ceiling' is not a lock of this site" in bad
    door = '\n[door]\nroom = "spa-1"\nlock = "locker"\n'
    (bad,) = problems('["spa-1/locker"]', door)
    assert "is the [door] lock" in bad
    (bad,) = problems('["locker"]')
    assert "is not 'room/device'" in bad


def test_a_sensors_new_values_add_only_their_own_configs() -> None:
    """A sensor's first report announces its values' configs and nothing else:
    republishing every config on each sensor's first report was n² retained
    messages at start (50 Modbus sensors of 20 values: ~26,000)."""
    from edge.ha_discovery import Discovery

    cfg = parse_config(site_text("new", "homeassistant"), "site.toml")
    assert cfg.home_assistant is not None
    discovery = Discovery(cfg, cfg.home_assistant)
    before = {discovery.topic(e): e.config for e in discovery.entities({})}
    keys = {"spa-1/air": ["temperature_c", "humidity_pct"]}
    after = {discovery.topic(e): e.config for e in discovery.entities(keys)}
    added = discovery.sensor_entities("spa-1/air", keys["spa-1/air"])
    assert {discovery.topic(e): e.config for e in added} == {
        topic: config for topic, config in after.items() if topic not in before
    }
    assert len(added) == 2
    assert discovery.sensor_entities("spa-1/nothing", ["temperature_c"]) == []
