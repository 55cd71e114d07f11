"""Modbus device model: typed devices polled over a shared :class:`ModbusBus`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from drivers.backoff import backoff_delay
from drivers.errors import (
    DeviceRejected,
    DeviceTimeout,
    DeviceUnavailable,
    DriverError,
    TransportError,
    UnsupportedCommand,
)
from drivers.modbus.bus import BusSession, ModbusBus, Priority
from drivers.modbus.codec import (
    ReadRequest,
    Value,
    decode_block,
    encode_command,
    plan_reads,
    state_from_fields,
)
from drivers.modbus.config import ModbusBusConfig, ModbusDeviceConfig
from drivers.model import (
    COMMAND_FOR_KIND,
    Availability,
    Command,
    Device,
    DeviceState,
    clamped_error,
    command_satisfied,
)
from drivers.tasks import watch

log = logging.getLogger(__name__)

OFFLINE_AFTER_FAILURES = 3
MAX_BACKOFF_S = 30.0


class ModbusDevice(Device):
    """A light, climate, lock or sensor behind a Modbus slave.

    A poller task reads the device every ``poll_interval_s``.  Failed polls
    back off on this device alone (full jitter, capped), so a dead slave
    takes ever less wire time from its bus neighbours; after
    ``offline_after`` failures in a row it is OFFLINE, and the first good
    read brings it back ONLINE.
    """

    def __init__(
        self,
        cfg: ModbusDeviceConfig,
        bus: ModbusBus,
        device_id: str,
        *,
        offline_after: int = OFFLINE_AFTER_FAILURES,
        max_backoff_s: float = MAX_BACKOFF_S,
    ) -> None:
        super().__init__(device_id, cfg.kind)
        if cfg.bus != bus.bus_id:
            raise ValueError(f"bus: device is on bus {cfg.bus!r}, given bus {bus.bus_id!r}")
        self.cfg = cfg
        self.bus = bus
        self.offline_after = offline_after
        self.max_backoff_s = max(max_backoff_s, cfg.poll_interval_s)
        self._plan: list[ReadRequest] = plan_reads(cfg.registers, bus.cfg.merge_gap)
        self._task: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        self.consecutive_failures = 0
        self.polls_ok = 0
        self.polls_failed = 0

    @property
    def read_plan(self) -> list[ReadRequest]:
        return list(self._plan)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(
                self._poll_loop(), name=f"modbus-poll:{self.device_id}"
            )

    async def run(self) -> None:
        """Poll until cancelled; same as start()+stop().  Raises if the poller
        task dies, so the supervisor restarts the device."""
        await self.start()
        assert self._task is not None
        try:
            await watch([self._task])
        finally:
            await self.stop()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def read_state(
        self, *, priority: Priority = Priority.POLL, session: BusSession | None = None
    ) -> DeviceState:
        """Read every mapped register once and publish the state."""
        fields: dict[str, Value] = {}
        for request in self._plan:
            values = await self.bus.read(
                request.table,
                self.cfg.unit,
                request.address,
                request.count,
                priority=priority,
                session=session,
            )
            fields.update(decode_block(request, values, self.cfg.registers))
        state = state_from_fields(self.kind, fields, self.cfg.mode_values)
        if self.consecutive_failures >= self.offline_after:
            log.warning(
                "%s: back online after %d failed polls", self.device_id, self.consecutive_failures
            )
        self.consecutive_failures = 0
        self._publish(state=state, availability=Availability.ONLINE)
        return state

    async def send(self, command: Command, *, timeout: float = 5.0, force: bool = False) -> None:
        expected = COMMAND_FOR_KIND[self.kind]
        if expected is None or not isinstance(command, expected):
            raise UnsupportedCommand(
                f"{self.device_id}: a {self.kind.value} does not take {type(command).__name__}"
            )
        writes = encode_command(command, self.cfg.registers, self.cfg.mode_values)
        if self.snapshot().availability is Availability.OFFLINE and not force:
            raise DeviceUnavailable(f"{self.device_id}: offline, nothing sent")
        try:
            async with (
                asyncio.timeout(timeout),
                self._write_lock,
                self.bus.session() as session,
            ):
                # One session: the write and its read-back follow each other
                # on the wire, ahead of every queued poll.
                for write in writes:
                    await self.bus.write(
                        write.table, self.cfg.unit, write.address, write.values, session=session
                    )
                state = await self.read_state(priority=Priority.WRITE, session=session)
        except TimeoutError as exc:
            raise DeviceTimeout(f"{self.device_id}: command not confirmed in {timeout} s") from exc
        if not command_satisfied(state, command):
            # The slave acknowledged the write but holds another value: it
            # clamped it (or a local override won).  Say what it holds.
            raise clamped_error(self.device_id, state, command)

    async def _poll_loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.cfg.poll_interval_s
        # Poll on a grid of the loop clock (multiples of the interval), the
        # same for every device: the devices of a bus wake together and their
        # reads go out back to back, one wake-up of the daemon for the lot.
        # Spread over the interval instead, each frame woke a cold process on
        # its own, and that wake-up, not the frame, was most of the cost: 51
        # slaves at 1 Hz took ~400 us of CPU per frame spread, ~150 us on the
        # grid (issue 17, docs/benchmarks.md).  A write still jumps the queued
        # polls, so it waits at most for the frame on the wire.
        # Within a slot, a fixed order by unit (10 us apart): the reads then
        # queue in the same order every round and each device keeps its
        # period; equal times would come off the timer heap in any order.
        phase = self.cfg.unit * 1e-5
        next_at = _slot_after(loop.time(), interval) + phase
        while True:
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                await self.read_state()
            except (TransportError, DeviceRejected) as exc:
                self._poll_failed(exc)
                next_at = loop.time() + self._backoff_s()
                continue
            except DriverError as exc:  # decode trouble: bad register map, keep polling
                log.error("%s: poll failed: %s", self.device_id, exc)
                self._poll_failed(exc)
                next_at = loop.time() + self._backoff_s()
                continue
            self.polls_ok += 1
            # Back on the grid (also after a failure's backoff): the next slot,
            # so the period does not drift by the read time, and after a long
            # stall missed slots are skipped rather than burst.
            next_at = _slot_after(loop.time() - phase, interval) + phase

    def _poll_failed(self, exc: Exception) -> None:
        self.polls_failed += 1
        self.consecutive_failures += 1
        log.debug(
            "%s: poll failed (%d in a row): %s", self.device_id, self.consecutive_failures, exc
        )
        if self.consecutive_failures >= self.offline_after:
            if self.snapshot().availability is not Availability.OFFLINE:
                log.warning(
                    "%s: offline after %d failed polls: %s", self.device_id, self.offline_after, exc
                )
            self._publish(availability=Availability.OFFLINE, seen=False)

    def _backoff_s(self) -> float:
        interval = self.cfg.poll_interval_s
        if self.consecutive_failures < self.offline_after:
            return interval  # a glitch: retry at the normal rate
        excess = self.consecutive_failures - self.offline_after + 1
        return backoff_delay(excess, interval, self.max_backoff_s, floor_s=interval)


def _slot_after(now: float, interval: float) -> float:
    """The first multiple of ``interval`` after ``now``."""
    return (now // interval + 1) * interval


def build_modbus_device(cfg: ModbusDeviceConfig, bus: ModbusBus, device_id: str) -> ModbusDevice:
    """The typed device for ``cfg`` on ``bus``; ``device_id`` is "<room>/<device>"."""
    return ModbusDevice(cfg, bus, device_id)


class ModbusBuses:
    """The site's Modbus buses and the devices on them: the one assembly path.

    The daemon supervises :meth:`run_bus` for each bus (a crash of the bus or
    of any of its devices restarts them together); :meth:`start` and
    :meth:`stop` run the very same coroutines as plain tasks for callers
    without a supervisor (tests, tools).
    """

    def __init__(self, buses: Iterable[ModbusBusConfig]) -> None:
        self.buses: dict[str, ModbusBus] = {}
        for cfg in buses:
            if cfg.id in self.buses:
                raise ValueError(f"buses: id {cfg.id!r} is used twice")
            self.buses[cfg.id] = ModbusBus(cfg)
        self.devices: dict[str, ModbusDevice] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def add_device(self, cfg: ModbusDeviceConfig, device_id: str) -> ModbusDevice:
        bus = self.buses.get(cfg.bus)
        if bus is None:
            raise ValueError(f"bus: no bus with id {cfg.bus!r} (known: {sorted(self.buses)})")
        if device_id in self.devices:
            raise ValueError(f"device id {device_id!r} is used twice")
        device = build_modbus_device(cfg, bus, device_id)
        self.devices[device_id] = device
        return device

    def on_bus(self, bus_id: str) -> list[ModbusDevice]:
        bus = self.buses[bus_id]
        return [d for d in self.devices.values() if d.bus is bus]

    async def run_bus(self, bus_id: str) -> None:
        """One bus with its devices until cancelled; raises if any of them dies."""
        bus = self.buses[bus_id]
        async with asyncio.TaskGroup() as tg:
            tg.create_task(bus.run(), name=f"modbus-bus:{bus_id}")
            for device in self.on_bus(bus_id):
                tg.create_task(device.run(), name=f"modbus-device:{device.device_id}")

    async def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self.run_bus(bus_id), name=f"modbus-buses:{bus_id}")
                for bus_id in self.buses
            ]

    async def stop(self) -> None:
        """Stop every bus with its devices (pollers first, then the port). Idempotent."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("modbus bus task %s had failed", task.get_name())
