"""What an operator sees in the log for Modbus faults: a dead slave behind a
live gateway is one warning when it goes and one when it comes back (no
pymodbus error per poll), and an RTU port that will not open is one line."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from drivers.modbus.bus import ModbusBus
from drivers.modbus.config import ModbusDeviceConfig, ModbusRtuBusConfig, ModbusTcpBusConfig
from drivers.modbus.devices import ModbusDevice
from drivers.modbus.simulator import SpaThermostat, ThermostatGateway
from drivers.model import Availability
from tests.conftest import free_port


async def until(predicate: Callable[[], bool], what: str, seen: Callable[[], object]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 45
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}; saw {seen()!r}")
        await asyncio.sleep(0.02)


def _messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= level]


async def test_dead_slave_is_one_warning_on_entry_and_one_on_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    port = free_port()
    gateway = ThermostatGateway(port=port, units=[1, 2], tick_s=0.2)
    await gateway.start()
    bus = ModbusBus(ModbusTcpBusConfig(type="tcp", id="gw", host="127.0.0.1", port=port))
    cfg = ModbusDeviceConfig(
        type="modbus",
        id="spa2",
        kind="climate",
        bus="gw",
        unit=2,
        poll_interval_s=0.1,
        registers=SpaThermostat.registers(),
    )
    device = ModbusDevice(cfg, bus, "spa/t2")
    await bus.start()
    await device.start()
    try:
        online = Availability.ONLINE
        await until(lambda: device.snapshot().availability is online, "online", device.snapshot)
        gateway.silence(2)
        # Well past going offline: many unanswered polls.
        await until(
            lambda: device.polls_failed >= device.offline_after + 4,
            "failed polls",
            lambda: device.polls_failed,
        )
        gateway.revive(2)
        await until(lambda: device.snapshot().availability is online, "back", device.snapshot)
    finally:
        await device.stop()
        await bus.stop()
        await gateway.stop()
    warnings = _messages(caplog, logging.WARNING)
    offline = [m for m in warnings if "spa/t2: offline" in m]
    back = [m for m in warnings if "spa/t2: back online" in m]
    assert len(offline) == 1 and "no answer" in offline[0], warnings
    assert len(back) == 1, warnings
    assert [m for m in warnings if m.startswith("pymodbus")] == [], warnings


async def test_rtu_port_that_will_not_open_is_one_clear_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    bus = ModbusBus(ModbusRtuBusConfig(type="rtu", id="rs485", port="/dev/ttyUSB-coresync-gone"))
    await bus.start()
    try:
        await until(
            lambda: any("cannot open serial port" in m for m in _messages(caplog, 30)),
            "the warning",
            lambda: _messages(caplog, 0),
        )
        # Several reconnect attempts later (0.1 s base backoff) still one line.
        await asyncio.sleep(1.5)
    finally:
        await bus.stop()
    lines = [m for m in _messages(caplog, logging.WARNING) if "rs485" in m]
    assert lines == [
        "drivers.modbus.bus: modbus bus rs485: cannot open serial port "
        "/dev/ttyUSB-coresync-gone; retrying in the background"
    ]
    assert not any(r.exc_info for r in caplog.records)
