"""A real ``coresync-edge run`` process for async tests: its site config, its
output, its HTTP surface (/healthz, /metrics) and its exit, all without
blocking the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from drivers.mqtt.simulator import ZigbeeSimulator
from edge.config import SiteConfig, parse_config
from edge.demo.runner import zigbee_devices
from tests.conftest import Broker, free_port

EXE = Path(sys.executable).parent / "coresync-edge"

SITE = """\
[site]
id = "{site}"
name = "Supervision test spa"

[mqtt]
host = "{host}"
port = {port}
zigbee2mqtt_base = "{base}"
reconnect_min_s = 0.1
reconnect_max_s = 0.5

[api]
host = "127.0.0.1"
port = {api_port}
zeroconf = false

[supervision]
max_restarts = {max_restarts}
window_s = 60
restart_min_s = 0.3
restart_max_s = 0.6
{extra}
[[rooms]]
id = "lobby"
name = "Lobby"
  [[rooms.devices]]
  id = "light"
  kind = "light"
  type = "zigbee2mqtt"
  friendly_name = "lobby_light"
  [[rooms.scenes]]
  id = "bright"
  name = "Bright"
  devices.light = {{ on = true, brightness = 90 }}
{rooms}
[[rooms]]
id = "sauna"
name = "Sauna"
  [[rooms.devices]]
  id = "heater"
  kind = "climate"
  type = "zigbee2mqtt"
  friendly_name = "sauna_heater"
  heater = true
  limits.min_target_c = 60
  limits.max_target_c = 90
  limits.hard_max_c = 95
  limits.auto_off_minutes = 60
"""

CLOUD = """
[cloud]
base_url = "{url}"
node_id = "edge-1"
secret_env = "TEST_NODE_SECRET"
interval_s = 0.2
backoff_min_s = 0.05
backoff_max_s = 0.5
"""

MODBUS_BUS = """
[[modbus_buses]]
id = "gw"
type = "tcp"
host = "127.0.0.1"
port = {modbus_port}
timeout_s = 0.5
reconnect_max_s = 0.5
"""

MODBUS_ROOM = """
[[rooms]]
id = "pool"
name = "Pool"
  [[rooms.devices]]
  id = "thermostat"
  kind = "climate"
  type = "modbus"
  bus = "gw"
  unit = 1
  poll_interval_s = 0.2
  mode_values = { off = 0, heat = 1, cool = 2, auto = 3 }
  [rooms.devices.registers]
  mode = { table = "holding", address = 0, dtype = "uint16" }
  target_c = { table = "holding", address = 1, dtype = "int16", scale = 0.1, writable = true }
  current_c = { table = "input", address = 0, dtype = "int16", scale = 0.1 }
"""


def write_site(
    tmp: Path,
    broker: Broker,
    *,
    cloud_url: str | None = None,
    modbus_port: int | None = None,
    max_restarts: int = 1000,
) -> tuple[Path, SiteConfig]:
    tag = f"{os.getpid()}-{time.monotonic_ns() % 10**9}"
    extra = (CLOUD.format(url=cloud_url) if cloud_url else "") + (
        MODBUS_BUS.format(modbus_port=modbus_port) if modbus_port else ""
    )
    text = SITE.format(
        site=f"sup-{tag}",
        host=broker.host,
        port=broker.port,
        base=f"sup-z2m-{tag}",
        api_port=free_port(),
        max_restarts=max_restarts,
        extra=extra,
        rooms=MODBUS_ROOM if modbus_port else "",
    )
    path = tmp / "site.toml"
    path.write_text(text)
    return path, parse_config(text)  # the test's own config must be valid


def simulator_for(cfg: SiteConfig) -> ZigbeeSimulator:
    assert cfg.mqtt is not None
    return ZigbeeSimulator(
        cfg.mqtt.host, cfg.mqtt.port, base=cfg.mqtt.zigbee2mqtt_base, devices=zigbee_devices(cfg)
    )


@dataclass
class Daemon:
    proc: asyncio.subprocess.Process
    url: str
    data_dir: Path
    lines: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    @property
    def output(self) -> str:
        return "".join(self.lines)

    async def get(self, path: str, token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with (
            aiohttp.ClientSession() as http,
            http.get(self.url + path, headers=headers) as resp,
        ):
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.text()

    async def health(self) -> tuple[int, dict[str, Any]]:
        status, body = await self.get("/healthz")
        return status, body

    async def metric(self, name: str, **labels: str) -> float | None:
        _, text = await self.get("/metrics")
        for family in text_string_to_metric_families(str(text)):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return None

    async def terminate(self, within_s: float = 30.0) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds until the process was gone)."""
        started = time.monotonic()
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), within_s)
        elapsed = time.monotonic() - started
        if self.reader is not None:
            await asyncio.wait_for(self.reader, 5)
        return code, elapsed

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader


# Fault injection: the real CLI, with the sync job's cycle raising KeyError (a
# bug in the job) for as long as the file named by the variable exists.
CRASHING_SYNC = """
import os, sys
from pathlib import Path
import sync.client
flag = Path(os.environ["CORESYNC_TEST_CRASH_SYNC"])
cycle = sync.client.SyncClient.sync_once
async def crashing_cycle(self):
    if flag.exists():
        raise KeyError("block")
    return await cycle(self)
sync.client.SyncClient.sync_once = crashing_cycle
from edge.cli import main
sys.exit(main(sys.argv[1:]))
"""


async def start_daemon(
    config: Path,
    cfg: SiteConfig,
    data_dir: Path,
    env: dict[str, str] | None = None,
    *,
    crash_sync_while: Path | None = None,
) -> Daemon:
    """Start ``coresync-edge run`` and wait until its LAN API listens.
    ``crash_sync_while``: the sync job crashes while that file exists."""
    argv = [str(EXE)]
    env = {**os.environ, **(env or {})}
    if crash_sync_while is not None:
        argv = [sys.executable, "-c", CRASHING_SYNC]
        env["CORESYNC_TEST_CRASH_SYNC"] = str(crash_sync_while)
    proc = await asyncio.create_subprocess_exec(
        *argv, "run", "--config", str(config), "--data-dir", str(data_dir),
        env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    daemon = Daemon(proc, f"http://127.0.0.1:{cfg.api.port}", data_dir)

    async def read() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            daemon.lines.append(raw.decode(errors="replace"))

    daemon.reader = asyncio.create_task(read(), name="daemon-output")
    try:
        await wait_for(
            lambda: _listening(daemon), 40, "the LAN API to listen", lambda: daemon.output[-3000:]
        )
    except BaseException:
        await daemon.kill()
        raise
    return daemon


async def _listening(daemon: Daemon) -> bool:
    if daemon.proc.returncode is not None:
        raise AssertionError(f"daemon exited {daemon.proc.returncode}:\n{daemon.output[-3000:]}")
    return bool(re.search(r"LAN API at http", daemon.output))


async def wait_for(
    cond: Callable[[], Awaitable[bool]],
    within_s: float,
    what: str,
    seen: Callable[[], object] = lambda: None,
) -> None:
    """Poll ``cond`` until true; fail naming ``what`` and what was last seen."""
    deadline = time.monotonic() + within_s
    while True:
        with contextlib.suppress(aiohttp.ClientError):
            if await cond():
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}; saw {seen()!r}")
        await asyncio.sleep(0.1)
