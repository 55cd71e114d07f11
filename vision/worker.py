"""Inference off the event loop: a spawned worker process with an asyncio client.

The child loads the models once and answers one frame at a time over a pipe.
The client talks to it from a single-thread executor (calls are serialised,
the loop never blocks), notices a dead or hung child, fails the call in flight
with :class:`WorkerCrashed` / :class:`WorkerTimeout` and starts a fresh child.
Callers on the door path treat any :class:`vision.errors.WorkerError` as deny.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import numpy as np
import numpy.typing as npt

from vision.camera import Frame
from vision.config import WorkerConfig as WorkerConfig  # re-exported
from vision.errors import WorkerCrashed, WorkerError, WorkerStopped, WorkerTimeout
from vision.pipeline import FrameResult

log = logging.getLogger(__name__)
POLL_S = 0.05


def _child_main(conn: Connection, max_faces: int, num_jitters: int, mesh: bool) -> None:
    """Worker process entry point: load once, then answer (id, image, seq, ts) requests."""
    # Ctrl-C at a terminal reaches the whole process group; the parent decides
    # when the worker stops, so the child must not die of SIGINT on its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        from vision.pipeline import FaceAnalyzer

        analyzer = FaceAnalyzer(max_faces=max_faces, num_jitters=num_jitters, mesh=mesh)
    except Exception as exc:
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if request is None:
            return
        req_id, image, seq, ts = request
        try:
            conn.send((req_id, "ok", analyzer.analyze(image, seq, ts)))
        except Exception as exc:  # a bad frame must not kill the worker
            conn.send((req_id, "error", f"{type(exc).__name__}: {exc}"))


class VisionWorker:
    """``await start()``, then ``await analyze(frame)``; ``await stop()`` when done."""

    def __init__(self, config: WorkerConfig | None = None) -> None:
        self.config = config or WorkerConfig()
        self._ctx = mp.get_context("spawn")
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._ids = itertools.count(1)
        self._stopped = False
        self._started_once = False
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def rss_bytes(self) -> int | None:
        """Resident memory of the worker process (Linux /proc), None if not running."""
        pid = self.pid
        if pid is None:
            return None
        try:
            for line in open(f"/proc/{pid}/status").read().splitlines():  # noqa: SIM115
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    async def start(self) -> None:
        if self._executor is not None:
            return
        self._stopped = False
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="vision-worker")
        await self._in_executor(self._ensure_running)

    async def stop(self) -> None:
        """Idempotent: asks the child to exit, kills it if it does not."""
        self._stopped = True
        executor, self._executor = self._executor, None
        if executor is None:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(executor, self._shutdown_child)
        finally:
            executor.shutdown(wait=False)

    async def analyze(self, frame: Frame | npt.NDArray[np.uint8]) -> FrameResult:
        if isinstance(frame, Frame):
            request: tuple[Any, ...] = (next(self._ids), frame.image, frame.seq, frame.ts)
        else:
            request = (next(self._ids), np.asarray(frame, dtype=np.uint8), -1, time.time())
        result: FrameResult = await self._in_executor(self._roundtrip, request)
        return result

    async def _in_executor(self, fn: Any, *args: Any) -> Any:
        if self._stopped or self._executor is None:
            raise WorkerStopped("vision worker is not running")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- executor thread only ---------------------------------------------------------
    def _ensure_running(self) -> None:
        if self._proc is not None and self._proc.is_alive() and self._conn is not None:
            return
        if self._started_once:
            self.restarts += 1
        self._discard_child()
        self._started_once = True
        parent, child = self._ctx.Pipe()
        cfg = self.config
        proc = self._ctx.Process(
            target=_child_main,
            args=(child, cfg.max_faces, cfg.num_jitters, cfg.mesh),
            name="vision-worker",
            daemon=True,
        )
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        deadline = time.monotonic() + cfg.start_timeout_s
        while not parent.poll(POLL_S):
            if not proc.is_alive():
                self._discard_child()
                raise WorkerCrashed("vision worker died while loading models")
            if time.monotonic() > deadline:
                self._discard_child()
                raise WorkerTimeout(f"vision worker not ready in {cfg.start_timeout_s}s")
        try:
            status, detail = parent.recv()
        except (EOFError, OSError) as exc:
            self._discard_child()
            raise WorkerCrashed("vision worker died while loading models") from exc
        if status != "ready":
            self._discard_child()
            raise WorkerError(f"vision worker could not load models: {detail}")
        log.info("vision worker %s ready", detail)

    def _roundtrip(self, request: tuple[Any, ...]) -> FrameResult:
        self._ensure_running()
        proc, conn = self._proc, self._conn
        assert proc is not None and conn is not None
        req_id = request[0]
        deadline = time.monotonic() + self.config.call_timeout_s
        try:
            self._send_with_deadline(conn, request, deadline)
            while True:
                if conn.poll(POLL_S):
                    answer = conn.recv()
                    if answer[0] != req_id:
                        continue  # a late answer to a call that already failed
                    _, status, payload = answer
                    if status == "ok":
                        result: FrameResult = payload
                        return result
                    raise WorkerError(f"vision worker failed on frame: {payload}")
                if not proc.is_alive():
                    raise WorkerCrashed(f"vision worker (pid {proc.pid}) died mid-frame")
                if time.monotonic() > deadline:
                    raise WorkerTimeout(
                        f"vision worker gave no answer in {self.config.call_timeout_s}s"
                    )
        except (EOFError, BrokenPipeError, ConnectionResetError) as exc:
            self._replace_child()
            raise WorkerCrashed(f"vision worker (pid {proc.pid}) connection lost") from exc
        except (WorkerCrashed, WorkerTimeout):
            self._replace_child()
            raise

    def _send_with_deadline(self, conn: Connection, request: Any, deadline: float) -> None:
        """A frame is larger than the pipe buffer, so send() blocks until a hung child
        reads it; a helper thread lets the deadline win (killing the child unblocks it)."""
        failure: list[BaseException] = []

        def send() -> None:
            try:
                conn.send(request)
            except BaseException as exc:
                failure.append(exc)

        sender = threading.Thread(target=send, name="vision-worker-send", daemon=True)
        sender.start()
        sender.join(max(0.0, deadline - time.monotonic()))
        if sender.is_alive():
            raise WorkerTimeout(
                f"vision worker did not take a frame in {self.config.call_timeout_s}s"
            )
        if failure:
            raise failure[0]

    def _replace_child(self) -> None:
        """Kill the child now and queue a fresh one behind this call, so the failing
        call reports at once and the next call finds a loaded worker."""
        self._discard_child()
        if self._executor is not None and not self._stopped:
            with contextlib.suppress(RuntimeError):  # executor shut down by stop()
                self._executor.submit(self._restart_quietly)

    def _restart_quietly(self) -> None:
        if self._stopped:
            return
        try:
            self._ensure_running()
        except WorkerError as exc:  # the next call tries again and reports it
            log.warning("vision worker restart failed: %s", exc)

    def _discard_child(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            conn.close()
        if proc is not None:
            if proc.is_alive():
                proc.kill()
            proc.join(5)

    def _shutdown_child(self) -> None:
        if self._conn is not None and self._proc is not None and self._proc.is_alive():
            with contextlib.suppress(OSError):
                self._conn.send(None)
            self._proc.join(5)
        self._discard_child()
