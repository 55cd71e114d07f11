"""Devices answer as they are: a value the device clamps is reported as
"clamped to X" as soon as it answers, not as a timeout; through the core and
the LAN API's status.  Real Mosquitto + the Zigbee2MQTT simulator, and a real
pymodbus TCP gateway whose thermostat caps its setpoint.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from drivers.errors import DeviceClamped, DeviceTimeout
from drivers.modbus.bus import ModbusBus
from drivers.modbus.config import ModbusDeviceConfig, ModbusTcpBusConfig
from drivers.modbus.devices import ModbusDevice
from drivers.modbus.simulator import SimulatedUnit, SpaThermostat
from drivers.model import ClimateCommand, ClimateMode, DeviceKind, LightCommand, LightState
from edge.api.errors import CODES
from edge.api.routes_rooms import OUTCOME_ERRORS
from edge.config import parse_config
from edge.core import Actor
from edge.demo.broker import free_port
from tests.conftest import Broker
from tests.edge_site import start_edge
from tests.test_mqtt_driver import Site, running

# Long enough that a timeout could never pass for an answer: the test proves
# the clamp is reported on the device's answer by getting DeviceClamped at all.
PATIENT_S = 30.0


async def test_a_bulb_that_clamps_answers_clamped_not_timeout(mqtt_broker: Broker) -> None:
    site = Site(mqtt_broker)
    bulb = site.add(DeviceKind.LIGHT, "bulb")
    # 250-454 mireds: 4000 K is the coolest this bulb goes.
    site.sim.devices["bulb"].color_temp_range = (250, 454)
    async with running(site):
        await site.online("bulb")
        await bulb.send(LightCommand(on=True, color_temp_k=3000), timeout=PATIENT_S)
        with pytest.raises(DeviceClamped) as caught:
            await bulb.send(LightCommand(on=True, color_temp_k=5000), timeout=PATIENT_S)
        assert caught.value.values == {"color_temp_k": 4000}
        assert "color_temp_k clamped to 4000 (asked 5000)" in str(caught.value)
        state = bulb.snapshot().state
        assert isinstance(state, LightState) and state.color_temp_k == 4000
        # A value within its range is confirmed as before; from there, asking
        # for more than it can is again answered at once.
        await bulb.send(LightCommand(color_temp_k=2700), timeout=PATIENT_S)
        with pytest.raises(DeviceClamped):
            await bulb.send(LightCommand(color_temp_k=6000), timeout=PATIENT_S)
        # Asked again for what it already clamped to, its answer looks like a
        # stale report: a timeout (documented in docs/api.md), never a false clamp.
        with pytest.raises(DeviceTimeout):
            await bulb.send(LightCommand(color_temp_k=6000), timeout=0.5)


class CappedThermostat(SpaThermostat):
    """A controller that takes any setpoint but holds at most 28.0 degC."""

    def write(self, table: str, address: int, values: object) -> None:  # type: ignore[override]
        assert isinstance(values, list)
        if table == "holding" and address <= self.TARGET < address + len(values):
            i = self.TARGET - address
            values = [*values[:i], min(values[i], 280), *values[i + 1 :]]
        return super().write(table, address, values)  # type: ignore[arg-type, return-value]


async def test_a_modbus_setpoint_the_slave_caps_is_clamped_with_what_it_holds() -> None:
    from drivers.modbus.simulator import ModbusSimulator

    units: dict[int, SimulatedUnit] = {1: CappedThermostat(target_c=22.0)}
    sim = ModbusSimulator(units, port=free_port(), tick_s=3600)
    await sim.start()
    assert sim.port is not None
    bus = ModbusBus(ModbusTcpBusConfig(type="tcp", id="gw", host="127.0.0.1", port=sim.port))
    cfg = ModbusDeviceConfig(
        type="modbus",
        id="spa",
        kind="climate",
        bus="gw",
        unit=1,
        poll_interval_s=60,
        registers=SpaThermostat.registers(),
        mode_values={"off": 0, "heat": 1, "cool": 2, "auto": 3},
    )
    device = ModbusDevice(cfg, bus, "room/spa")
    await bus.start()
    try:
        await bus.connected()
        await device.send(ClimateCommand(mode=ClimateMode.HEAT, target_c=26.5), timeout=PATIENT_S)
        with pytest.raises(DeviceClamped) as caught:
            await device.send(ClimateCommand(target_c=30.0), timeout=PATIENT_S)
        assert caught.value.values == {"target_c": 28.0}
        assert "target_c clamped to 28.0 (asked 30.0)" in str(caught.value)
    finally:
        await bus.stop()
        await sim.stop()


SITE = """\
[site]
id = "{tag}"
name = "Clamp"
[mqtt]
host = "{host}"
port = {port}
zigbee2mqtt_base = "{tag}/z2m"
[[rooms]]
id = "room"
name = "Room"
  [[rooms.devices]]
  id = "bulb"
  kind = "light"
  type = "zigbee2mqtt"
  friendly_name = "bulb"
"""


async def test_the_core_reports_clamped_with_the_value_held(
    mqtt_broker: Broker, tmp_path: Path
) -> None:
    tag = f"clamp-{uuid.uuid4().hex[:8]}"
    cfg = parse_config(SITE.format(tag=tag, host=mqtt_broker.host, port=mqtt_broker.port))
    zigbee, service, core = await start_edge(cfg, mqtt_broker, tmp_path)
    try:
        zigbee.devices["bulb"].color_temp_range = (250, 454)
        core.command_timeout_s = PATIENT_S
        outcome = await core.command(
            "room", "bulb", {"on": True, "color_temp_k": 5000}, Actor("staff", "t")
        )
        assert outcome.result == "clamped"
        assert outcome.held == {"color_temp_k": 4000}
        assert outcome.as_dict()["held"] == {"color_temp_k": 4000}
        # The command log names it too (written before command() returns).
        rows = await core.store.commands(device_id="room/bulb")
        assert rows[0]["result"] == "clamped"
        assert "clamped to 4000" in str(rows[0]["detail"])
        # The API maps it to 409 device_clamped (the tablet shows its message).
        code, _ = OUTCOME_ERRORS["clamped"]
        assert (code, CODES[code]) == ("device_clamped", 409)
    finally:
        await service.stop()
        await zigbee.stop()
