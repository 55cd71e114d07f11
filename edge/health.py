"""What ``/healthz`` reports and what the systemd watchdog looks at.

Two different questions, kept apart on purpose:

- **Is everything well?** (``/healthz``, :func:`site_health`): every
  supervised component running, every database file writable, the disk not
  full, the MQTT broker connected.  Any "no" is a 503 whose body names it.
- **Is the process alive?** (the watchdog, :meth:`LoopMonitor.alive`): the
  event loop turns and the safety part (heater guards) runs.  A locked or
  full database is a degraded controller, not a dead one: restarting the
  process would not fix it and would stop the heater guards meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.ops.layout import DATABASES, EDGE_DB, SHOP_DB, data_files_health

if TYPE_CHECKING:
    from edge.core import EdgeCore
    from edge.supervisor import Supervisor

# Below this much free space the data dir counts as full: SQLite needs room
# for WAL frames and checkpoints well before the last byte goes.
MIN_FREE_BYTES = 1 << 20
PROBE_TIMEOUT_S = 3.0
LOOP_TICK_S = 0.25
# The safety part counts as stuck when it has not been running for this long.
SAFETY_DOWN_S = 60.0


def disk_free(data_dir: Path) -> int:
    return int(shutil.disk_usage(data_dir).free)


def probe_database(path: Path, free: int) -> dict[str, Any]:
    """One database file's state (blocking: run it on a thread).

    Takes and releases the write lock (``BEGIN IMMEDIATE``) on a connection
    of its own, so a file locked by another process or read-only shows up
    without writing anything.
    """
    if not path.exists():
        return {"state": "missing", "detail": f"{path.name} does not exist"}
    if not os.access(path, os.R_OK | os.W_OK):
        return {"state": "read_only", "detail": f"{path.name} is not writable by this process"}
    try:
        # Long enough to wait out one of the daemon's own writes, short enough
        # that a lock held by another process shows within the probe budget.
        conn = sqlite3.connect(path, timeout=0.4, isolation_level=None)
    except sqlite3.Error as exc:
        return {"state": "error", "detail": str(exc)}
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        text = str(exc)
        state = "locked" if "locked" in text or "busy" in text else "error"
        if "readonly" in text or "read-only" in text:
            state = "read_only"
        if "full" in text or (state == "error" and free < MIN_FREE_BYTES):
            state = "disk_full"
        return {"state": state, "detail": text}
    finally:
        conn.close()
    if free < MIN_FREE_BYTES:
        return {"state": "disk_full", "detail": f"{free} bytes free in the data dir"}
    return {"state": "ok"}


def database_names(data_dir: Path, with_door: bool) -> list[str]:
    """From the one data-file list: edge.db and shop.db always, the door's
    files when the site has a door (or they exist)."""
    return [n for n in DATABASES if n in (EDGE_DB, SHOP_DB) or with_door or (data_dir / n).exists()]


def probe_data_dir(data_dir: Path, with_door: bool) -> dict[str, Any]:
    try:
        free = disk_free(data_dir)
    except OSError as exc:
        return {"disk": {"state": "error", "detail": str(exc)}, "databases": {}}
    unusable = data_files_health(data_dir)  # owner and mode, per file
    databases = {}
    for name in database_names(data_dir, with_door):
        why = unusable.get(name, "ok")
        databases[name] = (
            {"state": "unusable", "detail": why}
            if why != "ok"
            else probe_database(data_dir / name, free)
        )
    disk = {"state": "ok" if free >= MIN_FREE_BYTES else "full", "free_bytes": free}
    return {"disk": disk, "databases": databases}


async def site_health(
    core: EdgeCore, supervisor: Supervisor | None, data_dir: Path
) -> tuple[bool, dict[str, Any]]:
    """(all well, the report) for ``/healthz``."""
    with_door = core.config.door is not None
    try:
        storage = await asyncio.wait_for(
            asyncio.to_thread(probe_data_dir, data_dir, with_door), PROBE_TIMEOUT_S
        )
    except TimeoutError:
        storage = {
            "disk": {"state": "error", "detail": "storage probe timed out"},
            "databases": {},
        }
    components = supervisor.status() if supervisor is not None else {}
    problems = [
        f"component {n}: {c['state']}" for n, c in components.items() if c["state"] != "running"
    ]
    problems += [
        f"database {n}: {d['state']}" for n, d in storage["databases"].items() if d["state"] != "ok"
    ]
    if storage["disk"]["state"] != "ok":
        problems.append(f"disk: {storage['disk']['state']}")
    links = {name: probe() for name, probe in (supervisor.links if supervisor else {}).items()}
    problems += [f"{name}: disconnected" for name, up in links.items() if not up]
    body: dict[str, Any] = {
        "status": "ok" if not problems else "degraded",
        "site_id": core.site_id,
        "problems": problems,
        "components": components,
        **storage,
    }
    for name, up in links.items():
        body[name] = {"state": "connected" if up else "disconnected"}
    # Kept for clients of the first version of /healthz.
    body["database"] = storage["databases"].get(EDGE_DB, {}).get("state") == "ok"
    return not problems, body


class LoopMonitor:
    """Measures event-loop lag and answers the watchdog's one question."""

    def __init__(self, supervisor: Supervisor, tick_s: float = LOOP_TICK_S) -> None:
        self.supervisor = supervisor
        self.tick_s = tick_s
        self.lag_s = 0.0
        self.max_lag_s = 0.0
        self.last_tick = time.monotonic()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self.tick_s
            await asyncio.sleep(self.tick_s)
            self.lag_s = max(0.0, loop.time() - expected)
            self.max_lag_s = max(self.max_lag_s, self.lag_s)
            self.last_tick = time.monotonic()

    def safety_running(self) -> bool:
        now = time.time()
        for c in self.supervisor.components.values():
            if not c.safety:
                continue
            if c.state.value == "failed":
                return False
            if c.down_since is not None and now - c.down_since > SAFETY_DOWN_S:
                return False
        return True

    def alive(self) -> bool:
        """True while the loop turns and the safety part runs (never touches disk)."""
        return self.safety_running()
