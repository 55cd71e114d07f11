"""Writes ahead of polls, really: on a real pymodbus TCP gateway with 51 slaves
polled back to back (the queue never empties), a command's write and its
read-back go on the wire one after the other, ahead of every queued poll: at
most the frame already in flight comes before them, nothing between them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from drivers.modbus.config import ModbusDeviceConfig, ModbusTcpBusConfig
from drivers.modbus.devices import ModbusBuses
from drivers.modbus.simulator import ModbusSimulator, SimulatedUnit, SpaThermostat
from drivers.model import Availability, ClimateCommand, ClimateMode
from edge.demo.broker import free_port
from tests.edge_site import wait_until

SLAVES = 51
COMMANDED = 51  # the unit the test commands; the other 50 only poll
MODES = {"off": 0, "heat": 1, "cool": 2, "auto": 3}


@pytest.fixture
async def busy_bus() -> AsyncIterator[tuple[ModbusSimulator, ModbusBuses]]:
    units: dict[int, SimulatedUnit] = {u: SpaThermostat() for u in range(1, SLAVES + 1)}
    # A gateway to a slow serial line (5 ms an answer, ~200 frames/s) under pollers
    # that want ~1000 frames/s: the backlog is there whatever the machine's load.
    sim = ModbusSimulator(units, port=free_port(), tick_s=3600, answer_delay_s=0.005)
    await sim.start()
    assert sim.port is not None
    manager = ModbusBuses(
        [ModbusTcpBusConfig(type="tcp", id="gw", host="127.0.0.1", port=sim.port, timeout_s=2)]
    )
    for unit in units:
        cfg = ModbusDeviceConfig(
            type="modbus",
            id=f"spa{unit}",
            kind="climate",
            bus="gw",
            unit=unit,
            # Far faster than the bus can serve: polls always wait in the queue.
            poll_interval_s=0.05 if unit != COMMANDED else 3600,
            registers=SpaThermostat.registers(),
            mode_values=MODES,
        )
        manager.add_device(cfg, f"room/spa{unit}")
    await manager.start()
    try:
        yield sim, manager
    finally:
        await manager.stop()
        await sim.stop()


async def test_write_and_read_back_jump_every_queued_poll(
    busy_bus: tuple[ModbusSimulator, ModbusBuses],
) -> None:
    sim, manager = busy_bus
    bus = manager.buses["gw"]
    device = manager.devices[f"room/spa{COMMANDED}"]
    pollers = [d for d in manager.devices.values() if d is not device]
    await wait_until(
        lambda: all(d.snapshot().availability is Availability.ONLINE for d in pollers), 30
    )
    await device.read_state()
    loop = asyncio.get_running_loop()
    for i in range(10):
        await wait_until(lambda: bus.queue_depth >= 10, 30)  # a real backlog of polls
        queued = bus.queue_depth
        started = loop.time()
        await device.send(ClimateCommand(mode=ClimateMode.HEAT, target_c=30.0 + i), timeout=30)
        seen = [r for r in sim.request_log if r.at >= started]
        ours = [k for k, r in enumerate(seen) if r.unit == COMMANDED]
        # write (mode + setpoint) then the read-back of both blocks.
        assert [seen[k].is_write for k in ours] == [True, True, False, False], seen
        # At most the frame already on the wire before ours; none between ours.
        assert ours[0] <= 1, (queued, seen[: ours[0] + 1])
        assert ours == list(range(ours[0], ours[0] + len(ours))), seen
    frames = bus.frames_sent
    await wait_until(lambda: bus.frames_sent > frames + 20, 30)  # polls go on after
