"""Storage fault injection for tests: another process holds a SQLite file's
write lock (``BEGIN IMMEDIATE``) until told to let go, as a backup, a CLI
or a stuck writer beside the daemon would."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

HOLDER = """\
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA busy_timeout=10000")
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
print("released", flush=True)
"""


class WriteLock:
    """``async with WriteLock(path):`` the file takes no writes from anyone else."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.proc: asyncio.subprocess.Process | None = None

    async def acquire(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            HOLDER,
            str(self.path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 15)
        assert line.strip() == b"locked", f"lock holder said {line!r}"

    async def release(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
        line = await asyncio.wait_for(proc.stdout.readline(), 15)
        assert line.strip() == b"released", f"lock holder said {line!r}"
        await asyncio.wait_for(proc.wait(), 15)

    async def __aenter__(self) -> WriteLock:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and exc[0] is not None:
            self.proc.kill()
            await self.proc.wait()
            self.proc = None
        await self.release()
