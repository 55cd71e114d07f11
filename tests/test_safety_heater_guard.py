"""The heater guard acts on what it sees, whoever set it: a real site
(Mosquitto, the Zigbee2MQTT simulator, real SQLite) under EdgeService."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from drivers.modbus.codec import encode_command
from drivers.modbus.config import ModbusDeviceConfig
from drivers.model import ClimateCommand, ClimateMode, ClimateState
from edge.config import parse_config
from edge.errors import ConfigError
from tests.conftest import Broker
from tests.edge_site import wait_until
from tests.test_edge_service import STAFF, Site, start_site, stop_site
from tests.test_edge_service import site as site

EXE = Path(sys.executable).with_name("coresync-edge")


def heater_state(site: Site) -> ClimateState:
    state = site.core.room("sauna").devices["heater"].snapshot().state
    assert isinstance(state, ClimateState)
    return state


async def next_alert(sub: Any, kind: str, within_s: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    seen = []
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(f"no {kind} alert within {within_s}s; saw {seen}")
        try:
            event = await asyncio.wait_for(sub.get(), remaining)
        except TimeoutError:
            continue
        seen.append(event.data)
        if event.data.get("kind") == kind:
            data: dict[str, Any] = event.data
            return data


async def test_setpoint_published_straight_to_the_heater_is_corrected(site: Site) -> None:
    outcome = await site.core.command("sauna", "heater", {"mode": "heat", "target_c": 80}, STAFF)
    assert outcome.ok, outcome
    alerts = site.core.events.subscribe(types={"alert"})
    try:
        async with aiomqtt.Client(site.broker.host, site.broker.port) as client:
            await client.publish(
                f"{site.base}/sauna_heater/set",
                json.dumps({"system_mode": "heat", "occupied_heating_setpoint": 150}),
                qos=1,
            )
        alert = await next_alert(alerts, "heater_setpoint_corrected", 5)
        assert alert["severity"] == "critical" and "150" in alert["message"], alert
        assert alert["source"].startswith("mqtt"), alert
        await wait_until(lambda: heater_state(site).target_c == 90, 5)
        # The same from the heater's own panel: named as such.
        await site.zigbee.update("sauna_heater", occupied_heating_setpoint=120.0)
        alert = await next_alert(alerts, "heater_setpoint_corrected", 5)
        assert alert["source"].startswith("device panel"), alert
        await wait_until(lambda: heater_state(site).target_c == 90, 5)
    finally:
        alerts.close()


async def test_heater_offline_while_heating_alerts_at_once_and_is_switched_off(
    mqtt_broker: Broker, tmp_path: Path
) -> None:
    s = await start_site(mqtt_broker, tmp_path, unknown_grace=1.5)
    alerts = s.core.events.subscribe(types={"alert"})
    try:
        outcome = await s.core.command("sauna", "heater", {"mode": "heat", "target_c": 80}, STAFF)
        assert outcome.ok, outcome
        async with aiomqtt.Client(s.broker.host, s.broker.port) as client:
            await client.subscribe(f"{s.base}/sauna_heater/set", qos=1)
            await s.zigbee.go_offline("sauna_heater")
            alert = await next_alert(alerts, "heater_offline", 2.0)
            assert alert["device_id"] == "sauna/heater", alert
            # Unseen past the grace: a safety off goes out although it is marked offline.
            async with asyncio.timeout(15):
                async for message in client.messages:
                    body = json.loads(message.payload)  # type: ignore[arg-type]
                    if body.get("system_mode") == "off":
                        break
            await next_alert(alerts, "heater_safety_off", 5)
            await s.zigbee.go_online("sauna_heater")
            await wait_until(lambda: heater_state(s).mode is ClimateMode.OFF, 15)
    finally:
        alerts.close()
        await stop_site(s)


MODBUS_HEATER = """\
[site]
id = "x"
name = "x"

[[modbus_buses]]
id = "gw"
type = "tcp"
host = "127.0.0.1"

[[rooms]]
id = "sauna"
name = "Sauna"
  [[rooms.devices]]
  id = "heater"
  kind = "climate"
  type = "modbus"
  bus = "gw"
  unit = 1
  heater = true
  limits = {{ min_target_c = 60, max_target_c = 90, hard_max_c = 95, auto_off_minutes = 60 }}
  [rooms.devices.registers]
  target_c = {{ table = "holding", address = 1, writable = true }}
{extra}
"""


def test_a_heater_the_guard_cannot_see_and_switch_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(MODBUS_HEATER.format(extra=""), "site.toml")
    problem = "\n".join(info.value.problems)
    assert "site.toml:13:" in problem and "heater 'heater'" in problem, problem
    assert "current_c" in problem, problem
    # Temperature but no way to switch it off: still refused.
    with pytest.raises(ConfigError) as info:
        parse_config(
            MODBUS_HEATER.format(extra='  current_c = { table = "input", address = 0 }'), "s"
        )
    assert "writable registers.mode" in "\n".join(info.value.problems)


def test_validate_config_warns_about_a_heater_without_device_timer(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(
        MODBUS_HEATER.format(
            extra='  current_c = { table = "input", address = 0 }\n'
            '  mode = { table = "holding", address = 0 }'
        )
    )
    out = subprocess.run(
        [str(EXE), "validate-config", str(site)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "warning: heater sauna/heater has no device-side timer" in out.stderr
    assert f"{site}:13:" in out.stderr


def test_modbus_countdown_register_is_written_with_every_heat_command() -> None:
    cfg = parse_config(
        MODBUS_HEATER.format(
            extra='  current_c = { table = "input", address = 0 }\n'
            '  mode = { table = "holding", address = 0 }\n'
            '  on_time_s = { table = "holding", address = 5 }'
        ).replace("heater = true", 'heater = true\n  device_timer = "countdown_register"'),
        "s",
    )
    device = cfg.rooms[0].devices[0]
    assert isinstance(device, ModbusDeviceConfig) and device.device_timer == "countdown_register"
    writes = encode_command(
        ClimateCommand(mode=ClimateMode.HEAT, on_time_s=900), device.registers, device.mode_values
    )
    assert ("on_time_s", 5, [900]) in [(w.field, w.address, list(w.values)) for w in writes]
    # Mapped but not declared: refused, so the config says what protection there is.
    with pytest.raises(ConfigError, match="device_timer"):
        parse_config(
            MODBUS_HEATER.format(
                extra='  current_c = { table = "input", address = 0 }\n'
                '  mode = { table = "holding", address = 0 }\n'
                '  on_time_s = { table = "holding", address = 5 }'
            ),
            "s",
        )
