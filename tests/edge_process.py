"""A real ``coresync-edge run`` process for tests: started on a site config,
waited on until it says it started, stopped with SIGTERM or killed with
SIGKILL, and started again on the same data dir."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import signal
import sys
from pathlib import Path

EXE = Path(sys.executable).with_name("coresync-edge")
STARTED = "edge service for site"


class EdgeProcess:
    def __init__(self, config: Path, data_dir: Path) -> None:
        self.config = config
        self.data_dir = data_dir
        self.proc: asyncio.subprocess.Process | None = None
        self.output: collections.deque[str] = collections.deque(maxlen=400)
        self._reader: asyncio.Task[None] | None = None
        self._started = asyncio.Event()

    async def start(self, within_s: float = 60.0) -> None:
        self._started = asyncio.Event()
        self.proc = await asyncio.create_subprocess_exec(
            str(EXE),
            "run",
            "--config",
            str(self.config),
            "--data-dir",
            str(self.data_dir),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read(self.proc), name="edge-process-output")
        try:
            await asyncio.wait_for(self._started.wait(), within_s)
        except TimeoutError:
            raise AssertionError(
                "coresync-edge run did not start; it said:\n" + "\n".join(self.output)
            ) from None

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.output.append(line)
            if STARTED in line and " started" in line:
                self._started.set()

    async def stop(self, sig: signal.Signals = signal.SIGTERM, within_s: float = 30.0) -> int:
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        if proc.returncode is None:
            proc.send_signal(sig)
        try:
            code = await asyncio.wait_for(proc.wait(), within_s)
        except TimeoutError:
            proc.kill()
            code = await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)
        return code

    def said(self, text: str) -> bool:
        return any(text in line for line in self.output)
