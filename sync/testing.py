"""Test helpers: a fault-injecting TCP proxy and a cloud launcher with a schema.

``FaultProxy`` sits between the sync client and the cloud and, per
connection, can refuse, reset after N request or response bytes (a cut
mid-request or mid-response), delay, or answer 503 itself.  Faults are queued
(``fail_next``) for deterministic tests or drawn at random (``drop_rate``).
``offline_at`` takes the link down just before the n-th request that contains
a marker (e.g. ``b"/sync/recover"``) would be forwarded: a deterministic point
inside a client's exchange, whatever connection it reuses.

``CloudProcess`` runs a real ``coresync-cloud serve`` (optionally inside a
PostgreSQL schema, optionally as several workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import subprocess
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["refuse", "cut_request", "cut_response", "http_503", "delay"]


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    after_bytes: int = 0  # for cut_request / cut_response
    delay_s: float = 0.0  # for delay


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, *, seed: int = 1) -> None:
        self.target = (target_host, target_port)
        self.host = "127.0.0.1"
        self.port = 0
        self.queued: deque[Fault] = deque()
        self.drop_rate = 0.0
        self.offline = False
        self.connections = 0
        self.upstream: list[bytes] = []  # every request byte forwarded, for inspection
        self.downstream: list[bytes] = []  # every response byte forwarded
        self.faults = 0
        self.offline_at: tuple[bytes, int] | None = None  # (marker, n): see the module doc
        self.marked = 0  # requests seen with the marker
        self.went_offline = asyncio.Event()
        self._rng = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def fail_next(self, *faults: Fault) -> None:
        self.queued.extend(faults)

    async def set_offline(self, offline: bool) -> None:
        """Offline: reset every open connection and refuse new ones."""
        self.offline = offline
        if offline:
            tasks = list(self._tasks)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        tasks, self._tasks = list(self._tasks), set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _next_fault(self) -> Fault | None:
        if self.offline:
            return Fault("refuse")
        if self.queued:
            return self.queued.popleft()
        if self.drop_rate and self._rng.random() < self.drop_rate:
            kind: FaultKind = self._rng.choice(["refuse", "cut_request", "cut_response"])
            return Fault(kind, after_bytes=self._rng.randint(1, 2000))
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        fault = self._next_fault()
        self.faults += fault is not None
        try:
            await self._serve(reader, writer, fault)
        except (OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # Cancelled by set_offline or stop: the connection is reset below.  Not
            # re-raised, or asyncio's start_server logs the cancelled handler as an error.
            pass
        finally:
            _reset(writer)
            self._tasks.discard(task)

    def _pass(self, data: bytes) -> bool:
        """Upstream gate: False (and offline from now on) at the ``offline_at`` request."""
        if self.offline:
            return False
        if self.offline_at is not None and self.offline_at[0] in data:
            self.marked += 1
            if self.marked >= self.offline_at[1]:
                self.offline = True
                self.went_offline.set()
                return False
        return True

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, fault: Fault | None
    ) -> None:
        if fault is not None and fault.kind == "refuse":
            return
        if fault is not None and fault.kind == "http_503":
            await reader.read(65536)
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                         b"Connection: close\r\n\r\n")  # fmt: skip
            await writer.drain()
            return
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.delay_s)
        up_r, up_w = await asyncio.open_connection(*self.target)
        try:
            up_limit = fault.after_bytes if fault and fault.kind == "cut_request" else None
            down_limit = fault.after_bytes if fault and fault.kind == "cut_response" else None
            pumps = [
                asyncio.create_task(
                    _pump(reader, up_w, up_limit, self.upstream, self._pass), name="proxy-up"
                ),
                asyncio.create_task(
                    _pump(up_r, writer, down_limit, self.downstream), name="proxy-down"
                ),
            ]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for p in pumps:
                    p.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            _reset(up_w)


async def _pump(
    src: asyncio.StreamReader,
    dst: asyncio.StreamWriter,
    limit: int | None,
    tap: list[bytes] | None = None,
    gate: Callable[[bytes], bool] | None = None,
) -> None:
    sent = 0
    while True:
        data = await src.read(65536)
        if not data or (gate is not None and not gate(data)):
            return  # a gate closing: the caller resets both sides
        if tap is not None:
            tap.append(data)
        if limit is not None and sent + len(data) >= limit:
            dst.write(data[: max(0, limit - sent)])
            with contextlib.suppress(OSError):
                await dst.drain()
            return  # the caller resets both sides: a cut, not a clean close
        dst.write(data)
        await dst.drain()
        sent += len(data)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0) so the peer sees a reset, not a clean end."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


class CloudProcess:
    """A real ``coresync-cloud`` process (SQLite) or the PG launcher, on a free port.

    The test prepares the database itself (schema, a node credential, seed
    data) through the same domain code, then starts and stops the process.
    """

    def __init__(self, db: str, port: int, *, schema: str | None = None, workers: int = 1) -> None:
        import sys
        from pathlib import Path

        self.db, self.port, self.schema = db, port, schema
        exe = Path(sys.executable).parent
        self.argv = [str(exe / "coresync-cloud"), "serve", "--db", db, "--port", str(port),
                     "--workers", str(workers)]  # fmt: skip
        if schema is not None:
            self.argv += ["--schema", schema]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import time

        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"cloud exited with {self.proc.returncode}")
            time.sleep(0.05)
        raise TimeoutError("cloud did not open its port")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
