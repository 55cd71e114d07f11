"""Modbus transport: one physical bus, one frame on the wire at a time.

A :class:`ModbusBus` owns one pymodbus async client (TCP or RTU) and a single
worker task that takes requests from a priority queue, so writes jump ahead
of queued polls and requests never interleave on a shared RS-485 line or
gateway.  A write and its read-back run as one :class:`BusSession`: no poll
gets the wire between them.  A separate link task (re)connects with full-jitter backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from drivers.backoff import backoff_delay
from drivers.errors import DeviceRejected, DeviceTimeout, TransportError
from drivers.modbus.client import EXCEPTION_NAMES, Client, make_client
from drivers.modbus.config import ModbusBusConfig, ModbusRtuBusConfig, Table
from drivers.tasks import watch

log = logging.getLogger(__name__)

RECONNECT_BASE_S = 0.1


def _raise_if_cancelled(task: asyncio.Task[None]) -> None:
    """Honour a cancel that pymodbus swallowed.  On Python 3.11 asyncio.wait_for,
    which pymodbus awaits each answer (and a connect) with, returns the result
    instead of raising when the cancel lands as the result arrives; the task
    still counts the request (``cancelling()``), so without this the worker
    would go on to wait for the next job and stop() would wait for it forever."""
    if task.cancelling():
        raise asyncio.CancelledError


class Priority(IntEnum):
    """Lower runs first."""

    WRITE = 0  # includes the read-back that confirms a write
    POLL = 1


Operation = Callable[[Client], Awaitable[Any]]


@dataclass(order=True)
class _Job:
    priority: int
    seq: int
    describe: str = field(compare=False)
    operation: Operation = field(compare=False)
    future: asyncio.Future[Any] = field(compare=False)
    session: BusSession | None = field(default=None, compare=False)


class BusSession:
    """A run of requests that must follow each other on the wire (a write
    and its read-back): once its first frame is sent, the bus takes only
    this session's requests until it ends, so no queued poll slips in
    between while the caller prepares its next frame."""

    def __init__(self, bus: ModbusBus) -> None:
        self.bus = bus

    async def __aenter__(self) -> BusSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.bus._end_session(self)


class ModbusBus:
    """One TCP gateway or serial line, shared by every device on it."""

    def __init__(self, cfg: ModbusBusConfig) -> None:
        self.cfg = cfg
        self.bus_id = cfg.id
        self._gap_s = cfg.gap_s if isinstance(cfg, ModbusRtuBusConfig) else 0.0
        self._client: Client | None = None
        self._queue: list[_Job] = []
        self._current: _Job | None = None  # the job on the wire
        self._seq = itertools.count()
        self._queued = asyncio.Event()
        self._up = asyncio.Event()
        self._down = asyncio.Event()
        self._down.set()
        self._lost = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._last_frame_end = 0.0
        self._session: BusSession | None = None  # holds the wire between its frames
        self.frames_sent = 0

    # -- lifecycle -----------------------------------------------------------
    async def start(self) -> None:
        if self._tasks:
            return
        self._stopping = False
        self._client = make_client(self.cfg, self._on_trace_connect)
        self._tasks = [
            asyncio.create_task(self._link(), name=f"modbus-bus:{self.bus_id}:link"),
            asyncio.create_task(self._work(), name=f"modbus-bus:{self.bus_id}:worker"),
        ]

    async def run(self) -> None:
        """Start, run until cancelled, then stop (a component under a supervisor).

        Raises if the link or worker task dies, so the supervisor restarts the bus.
        """
        await self.start()
        try:
            await watch(self._tasks)
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Stop the worker and link, fail queued requests, close the port. Idempotent."""
        self._stopping = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        pending = [job for job in (self._current, *self._queue) if job is not None]
        self._current, self._queue, self._session = None, [], None
        for job in pending:
            if not job.future.done():
                job.future.set_exception(TransportError(f"bus {self.bus_id} stopped"))
        if self._client is not None:
            self._client.close()
            self._client = None
        self._mark_down()

    def is_connected(self) -> bool:
        return self._up.is_set()

    async def connected(self) -> None:
        await self._up.wait()

    async def disconnected(self) -> None:
        await self._down.wait()

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    # -- requests ------------------------------------------------------------
    async def read(
        self,
        table: Table,
        unit: int,
        address: int,
        count: int,
        *,
        priority: Priority = Priority.POLL,
        session: BusSession | None = None,
    ) -> list[int] | list[bool]:
        """Read ``count`` registers or bits.

        Raises DeviceRejected (exception response), DeviceTimeout or TransportError.
        """

        async def operation(client: Client) -> Any:
            if table == "coil":
                return await client.read_coils(address, count=count, device_id=unit)
            if table == "discrete_input":
                return await client.read_discrete_inputs(address, count=count, device_id=unit)
            if table == "holding":
                return await client.read_holding_registers(address, count=count, device_id=unit)
            return await client.read_input_registers(address, count=count, device_id=unit)

        response = await self._submit(
            priority, f"read {table} {address}+{count} unit {unit}", operation, session
        )
        if table in ("coil", "discrete_input"):
            return [bool(b) for b in response.bits[:count]]  # bits come padded to a byte
        return [int(r) for r in response.registers]

    async def write(
        self,
        table: Table,
        unit: int,
        address: int,
        values: Sequence[int] | Sequence[bool],
        *,
        priority: Priority = Priority.WRITE,
        session: BusSession | None = None,
    ) -> None:
        """Write coils or holding registers (multi-register write for several words)."""
        if table not in ("coil", "holding"):
            raise ValueError(f"table: {table} cannot be written")
        if not values:
            raise ValueError("values: nothing to write")

        async def operation(client: Client) -> Any:
            if table == "coil":
                bits = [bool(v) for v in values]
                if len(bits) == 1:
                    return await client.write_coil(address, bits[0], device_id=unit)
                return await client.write_coils(address, bits, device_id=unit)
            words = [int(v) for v in values]
            if len(words) == 1:
                return await client.write_register(address, words[0], device_id=unit)
            return await client.write_registers(address, words, device_id=unit)

        await self._submit(priority, f"write {table} {address} unit {unit}", operation, session)

    def session(self) -> BusSession:
        """``async with bus.session() as s:`` then pass ``session=s`` to each
        read/write that must follow the previous one without a poll between."""
        return BusSession(self)

    def _end_session(self, session: BusSession) -> None:
        if self._session is session:
            self._session = None
            self._queued.set()  # the others may go now

    async def _submit(
        self,
        priority: Priority,
        describe: str,
        operation: Operation,
        session: BusSession | None = None,
    ) -> Any:
        if not self._tasks:
            raise TransportError(f"bus {self.bus_id} is not started")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        job = _Job(priority, next(self._seq), describe, operation, future, session)
        heapq.heappush(self._queue, job)
        self._queued.set()
        return await future

    def _next_job(self) -> _Job | None:
        """The next job to put on the wire: the holding session's own, else
        the most urgent; None while a session holds the bus and has nothing
        queued yet (its caller is preparing the next frame)."""
        if self._session is None:
            job = heapq.heappop(self._queue)
            if job.session is not None and not job.future.done():
                self._session = job.session  # held from its first frame on
            return job
        for index, job in enumerate(self._queue):
            if job.session is self._session:
                self._queue.pop(index)
                heapq.heapify(self._queue)
                return job
        return None

    # -- internals -----------------------------------------------------------
    def _on_trace_connect(self, up: bool) -> None:
        if up:
            return  # _link marks the bus up once connect() has returned
        self._lost.set()
        self._mark_down()

    def _mark_down(self) -> None:
        self._up.clear()
        self._down.set()

    def _target(self) -> str:
        cfg = self.cfg
        if isinstance(cfg, ModbusRtuBusConfig):
            return f"serial port {cfg.port}"
        return f"gateway {cfg.host}:{cfg.port}"

    async def _link(self) -> None:
        attempt = 0
        task = asyncio.current_task()
        assert task is not None
        while True:
            client = self._client
            assert client is not None
            self._lost.clear()
            connected = await client.connect()
            _raise_if_cancelled(task)
            if connected:
                if attempt:
                    log.warning("modbus bus %s: %s open again", self.bus_id, self._target())
                attempt = 0
                log.info("modbus bus %s connected", self.bus_id)
                self._down.clear()
                self._up.set()
                await self._lost.wait()
                log.warning("modbus bus %s lost its link", self.bus_id)
                client.close()
            else:
                if attempt == 0:
                    # Once per outage: an RTU port that will not open (adapter
                    # unplugged, no permission) or a gateway that refuses.
                    log.warning(
                        "modbus bus %s: cannot open %s; retrying in the background",
                        self.bus_id,
                        self._target(),
                    )
                attempt += 1
            await asyncio.sleep(backoff_delay(attempt, RECONNECT_BASE_S, self.cfg.reconnect_max_s))

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        while True:
            _raise_if_cancelled(task)
            job = self._next_job() if self._queue else None
            if job is None:
                self._queued.clear()
                await self._queued.wait()
                continue
            if job.future.done():
                continue  # the caller gave up while queued
            if not self._up.is_set() or self._client is None:
                job.future.set_exception(TransportError(f"bus {self.bus_id} is not connected"))
                continue
            if self._gap_s:
                # RTU frames are delimited by silence: keep the line quiet for
                # the inter-frame gap after the previous exchange ended.
                wait = self._last_frame_end + self._gap_s - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            self._current = job
            outcome = await self._execute(job)
            self._current = None
            self._last_frame_end = loop.time()
            self.frames_sent += 1
            if not job.future.done():
                if isinstance(outcome, BaseException):
                    job.future.set_exception(outcome)
                else:
                    job.future.set_result(outcome)

    async def _execute(self, job: _Job) -> Any:
        """The response, or the driver exception to raise for it."""
        assert self._client is not None
        where = f"bus {self.bus_id}: {job.describe}"
        try:
            # pymodbus enforces timeout_s itself; this outer bound only guards
            # against a request that never resolves.  asyncio.timeout, not
            # wait_for: on Python 3.11 wait_for wraps the request in a task of
            # its own (two more event-loop turns per frame) and swallows a
            # cancel that lands as the answer arrives, so stop() could wait on
            # a worker that never ended.
            async with asyncio.timeout(self.cfg.timeout_s * 4):
                response = await job.operation(self._client)
        except ConnectionException as exc:
            self._lost.set()
            self._mark_down()
            return TransportError(f"{where}: link down ({exc})")
        except ModbusIOException:
            return DeviceTimeout(f"{where}: no answer in {self.cfg.timeout_s} s")
        except TimeoutError:
            return DeviceTimeout(f"{where}: no answer")
        except (ModbusException, OSError) as exc:
            return TransportError(f"{where}: {exc}")
        if response.isError():
            code = int(getattr(response, "exception_code", 0))
            name = EXCEPTION_NAMES.get(code, "unknown exception")
            return DeviceRejected(f"{where}: exception {code} ({name})")
        return response
