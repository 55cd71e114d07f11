"""A real pymodbus server that simulates Modbus slaves, for the demo and tests.

:class:`ModbusSimulator` serves any number of units (a "gateway") over TCP or
RTU on a serial port (a pty from socat in tests).  Each unit is a sparse
register map (:class:`SimulatedUnit`); :class:`SpaThermostat` adds a small
thermal model whose water temperature drifts toward the setpoint.  Fault
injection: :meth:`ModbusSimulator.silence` makes a unit stop answering, and
:meth:`SimulatedUnit.reject_writes` makes a register answer writes with an
exception response.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

from drivers.modbus.config import RegisterSpec, Table

TABLE_FOR_FUNCTION: dict[int, Table] = {
    1: "coil",
    5: "coil",
    15: "coil",
    2: "discrete_input",
    3: "holding",
    6: "holding",
    16: "holding",
    23: "holding",
    4: "input",
}
READ_FUNCTIONS = frozenset({1, 2, 3, 4})


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the server saw it (loop time of arrival)."""

    at: float
    unit: int
    function_code: int
    address: int
    count: int

    @property
    def is_write(self) -> bool:
        return self.function_code not in READ_FUNCTIONS


class SimulatedUnit:
    """One slave: four sparse tables; unmapped addresses answer 'illegal address'."""

    def __init__(
        self,
        *,
        coils: Mapping[int, bool] | None = None,
        discrete_inputs: Mapping[int, bool] | None = None,
        holding: Mapping[int, int] | None = None,
        inputs: Mapping[int, int] | None = None,
    ) -> None:
        self.tables: dict[Table, dict[int, int]] = {
            "coil": {a: int(bool(v)) for a, v in (coils or {}).items()},
            "discrete_input": {a: int(bool(v)) for a, v in (discrete_inputs or {}).items()},
            "holding": {a: v & 0xFFFF for a, v in (holding or {}).items()},
            "input": {a: v & 0xFFFF for a, v in (inputs or {}).items()},
        }
        self._rejected: set[tuple[Table, int]] = set()

    def reject_writes(self, table: Table, address: int, reject: bool = True) -> None:
        """Make writes to one address answer ILLEGAL_VALUE (or accept them again)."""
        if reject:
            self._rejected.add((table, address))
        else:
            self._rejected.discard((table, address))

    def read(self, table: Table, address: int, count: int) -> list[int] | ExcCodes:
        data = self.tables[table]
        try:
            return [data[a] for a in range(address, address + count)]
        except KeyError:
            return ExcCodes.ILLEGAL_ADDRESS

    def write(self, table: Table, address: int, values: Sequence[int]) -> ExcCodes | None:
        data = self.tables[table]
        span = range(address, address + len(values))
        if any(a not in data for a in span):
            return ExcCodes.ILLEGAL_ADDRESS
        if any((table, a) in self._rejected for a in span):
            return ExcCodes.ILLEGAL_VALUE
        if (rc := self.validate_write(table, address, values)) is not None:
            return rc
        for a, v in zip(span, values, strict=True):
            data[a] = int(v) & 0xFFFF
        return None

    def validate_write(self, table: Table, address: int, values: Sequence[int]) -> ExcCodes | None:
        """Hook for models that refuse some values."""
        return None

    def tick(self, dt: float) -> None:
        """Hook for models that change over time."""


def _s16(word: int) -> int:
    return word - 0x10000 if word & 0x8000 else word


class SpaThermostat(SimulatedUnit):
    """A spa/pool heater-cooler controller.

    Holding 0: mode (0 off, 1 heat, 2 cool, 3 auto); holding 1: setpoint,
    int16 tenths of degC (5.0-45.0 accepted).  Input 0: water temperature,
    int16 tenths of degC; input 1: humidity, uint16 tenths of percent.
    """

    MODE, TARGET = 0, 1
    CURRENT, HUMIDITY = 0, 1
    MIN_TARGET_C, MAX_TARGET_C = 5.0, 45.0

    def __init__(
        self,
        *,
        current_c: float = 30.0,
        target_c: float = 37.0,
        mode: int = 0,
        humidity: float = 55.0,
        ambient_c: float = 24.0,
        rate_c_per_s: float = 0.05,
    ) -> None:
        super().__init__(
            holding={self.MODE: mode, self.TARGET: round(target_c * 10)},
            inputs={self.CURRENT: round(current_c * 10), self.HUMIDITY: round(humidity * 10)},
        )
        self.current_c = current_c
        self.humidity = humidity
        self.ambient_c = ambient_c
        self.rate_c_per_s = rate_c_per_s

    @staticmethod
    def registers() -> dict[str, RegisterSpec]:
        """The register map, ready for ``ModbusDeviceConfig(kind="climate", ...)``."""
        return {
            "mode": RegisterSpec(table="holding", address=0, dtype="uint16", writable=True),
            "target_c": RegisterSpec(
                table="holding", address=1, dtype="int16", scale=0.1, writable=True
            ),
            "current_c": RegisterSpec(table="input", address=0, dtype="int16", scale=0.1),
            "humidity": RegisterSpec(table="input", address=1, dtype="uint16", scale=0.1),
        }

    @property
    def mode(self) -> int:
        return self.tables["holding"][self.MODE]

    @property
    def target_c(self) -> float:
        return _s16(self.tables["holding"][self.TARGET]) / 10

    def validate_write(self, table: Table, address: int, values: Sequence[int]) -> ExcCodes | None:
        if table != "holding":
            return None
        for a, v in zip(range(address, address + len(values)), values, strict=True):
            if a == self.MODE and v not in (0, 1, 2, 3):
                return ExcCodes.ILLEGAL_VALUE
            if a == self.TARGET and not (self.MIN_TARGET_C <= _s16(v) / 10 <= self.MAX_TARGET_C):
                return ExcCodes.ILLEGAL_VALUE
        return None

    def tick(self, dt: float) -> None:
        mode, target = self.mode, self.target_c
        goal = self.ambient_c
        heating = mode in (1, 3) and self.current_c < target
        cooling = mode in (2, 3) and self.current_c > target
        step = self.rate_c_per_s * dt
        if heating or cooling:
            goal = target
        else:
            step /= 10  # losing heat to the air is slow
        delta = goal - self.current_c
        self.current_c += max(-step, min(step, delta))
        # Warm water steams up the spa room a little.
        want_humidity = 50.0 + max(0.0, self.current_c - self.ambient_c) * 1.5
        self.humidity += (min(want_humidity, 95.0) - self.humidity) * min(1.0, dt / 30)
        self.tables["input"][self.CURRENT] = round(self.current_c * 10) & 0xFFFF
        self.tables["input"][self.HUMIDITY] = round(self.humidity * 10)


class _SimContext(ModbusServerContext):
    """Routes pymodbus datastore calls to our units, logs them, injects silence."""

    def __init__(self, simulator: ModbusSimulator) -> None:
        # Deliberately no super().__init__: the base builds pymodbus' own
        # (deprecated) stores; this path is pymodbus' "old simulator" hook.
        self.old_simulator = True
        self.simdevices = []
        self._sim = simulator

    def _unit(self, device_id: int) -> SimulatedUnit:
        unit = self._sim.units.get(device_id)
        if unit is None or device_id in self._sim.silenced:
            # With ignore_missing_devices the server then sends nothing at all.
            raise NoSuchIdException(f"unit {device_id} does not answer")
        return unit

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        unit = self._unit(device_id)
        if func_code in READ_FUNCTIONS:
            self._sim.record(device_id, func_code, address, count)
        await self._sim.answer_time()
        table = TABLE_FOR_FUNCTION.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        values = unit.read(table, address, count)
        if isinstance(values, ExcCodes) or table not in ("coil", "discrete_input"):
            return values
        return [bool(v) for v in values]

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        unit = self._unit(device_id)
        self._sim.record(device_id, func_code, address, len(values))
        await self._sim.answer_time()
        table = TABLE_FOR_FUNCTION.get(func_code)
        if table is None or table not in ("coil", "holding"):
            return ExcCodes.ILLEGAL_FUNCTION
        return unit.write(table, address, [int(v) for v in values])

    def device_ids(self) -> list[int]:
        return list(self._sim.units)


class ModbusSimulator:
    """A gateway of simulated units over TCP or RTU; async start()/stop()."""

    def __init__(
        self,
        units: Mapping[int, SimulatedUnit],
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        serial_port: str | None = None,
        baudrate: int = 19200,
        parity: str = "E",
        stopbits: int = 1,
        tick_s: float = 1.0,
        keep_log: int = 100_000,
        answer_delay_s: float = 0.0,
    ) -> None:
        """``answer_delay_s``: each answer takes this long, as behind a TCP gateway
        whose serial line is slow (9600 baud: ~10 ms a frame); tests that need a
        bus slower than its pollers set it rather than hope the machine is busy."""
        if (port is None) == (serial_port is None):
            raise ValueError("give exactly one of port (TCP) or serial_port (RTU)")
        self.units: dict[int, SimulatedUnit] = dict(units)
        self.silenced: set[int] = set()
        self.request_log: list[RequestRecord] = []
        self.host, self.port, self.serial_port = host, port, serial_port
        self.baudrate, self.parity, self.stopbits = baudrate, parity, stopbits
        self.tick_s = tick_s
        self.answer_delay_s = answer_delay_s
        self._keep_log = keep_log
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._model_task: asyncio.Task[None] | None = None

    def silence(self, unit: int) -> None:
        """Unit ``unit`` stops answering (no response: the client times out)."""
        self.silenced.add(unit)

    def revive(self, unit: int) -> None:
        self.silenced.discard(unit)

    async def answer_time(self) -> None:
        if self.answer_delay_s > 0:
            await asyncio.sleep(self.answer_delay_s)

    def record(self, unit: int, function_code: int, address: int, count: int) -> None:
        at = asyncio.get_running_loop().time()
        self.request_log.append(RequestRecord(at, unit, function_code, address, count))
        if len(self.request_log) > self._keep_log:
            del self.request_log[: self._keep_log // 10]

    async def start(self) -> None:
        if self._server is not None:
            return
        context = _SimContext(self)
        server: ModbusTcpServer | ModbusSerialServer
        if self.serial_port is not None:
            server = ModbusSerialServer(
                context,
                framer=FramerType.RTU,
                port=self.serial_port,
                baudrate=self.baudrate,
                parity=self.parity,
                stopbits=self.stopbits,
                ignore_missing_devices=True,
            )
        else:
            assert self.port is not None
            server = ModbusTcpServer(
                context, address=(self.host, self.port), ignore_missing_devices=True
            )
        await server.serve_forever(background=True)
        self._server = server
        self._model_task = asyncio.create_task(self._run_model(), name="modbus-sim:model")

    async def stop(self) -> None:
        """Stop the model and close the server and its connections. Idempotent."""
        task, self._model_task = self._model_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]

    async def _run_model(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(self.tick_s)
            now = loop.time()
            for unit in self.units.values():
                unit.tick(now - last)
            last = now


class ThermostatGateway(ModbusSimulator):
    """A Modbus TCP gateway with one :class:`SpaThermostat` per unit id (demo, tests)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int,
        units: Sequence[int] = (1,),
        tick_s: float = 1.0,
        current_c: float = 21.0,
        target_c: float = 22.0,
    ) -> None:
        super().__init__(
            {u: SpaThermostat(current_c=current_c, target_c=target_c) for u in units},
            host=host,
            port=port,
            tick_s=tick_s,
        )

    def thermostat(self, unit: int) -> SpaThermostat:
        found = self.units[unit]
        assert isinstance(found, SpaThermostat)
        return found
