"""``doctor``'s checks of the things outside the box: each Modbus gateway or
serial port, one register of every Modbus slave, the door camera (a frame is
read), and the cloud (reachable, node credentials accepted)."""

from __future__ import annotations

import asyncio
import grp
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from drivers.errors import DeviceRejected, DeviceTimeout, DriverError
from drivers.modbus.bus import ModbusBus
from drivers.modbus.config import (
    ModbusBusConfig,
    ModbusDeviceConfig,
    ModbusRtuBusConfig,
    ModbusTcpBusConfig,
)
from edge.door.config import DoorConfig
from edge.ops.checks import CREDENTIALS_FIX, Check
from sync.config import CloudSyncConfig
from vision.extra import vision_problem

if TYPE_CHECKING:
    from vision.camera import FrameSource


# -- Modbus transports ------------------------------------------------------------------
async def check_modbus_tcp(bus: ModbusTcpBusConfig, timeout: float) -> Check:
    name = f"modbus bus {bus.id} (tcp {bus.host}:{bus.port})"
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(bus.host, bus.port)
    except TimeoutError:
        return Check(name, "FAIL", f"no answer in {timeout:g} s", "is the gateway powered/on LAN?")
    except OSError as exc:
        return Check(name, "FAIL", f"cannot connect: {exc.strerror or exc}", "check host/port")
    writer.close()
    await writer.wait_closed()
    return Check(name, "OK", "TCP connect accepted")


def check_serial_port(bus: ModbusRtuBusConfig) -> Check:
    name = f"modbus bus {bus.id} (rtu {bus.port})"
    path = Path(bus.port)
    if not path.exists():
        return Check(
            name,
            "FAIL",
            "serial device does not exist",
            "plug the adapter in; see docs/deploy.md for a udev rule giving it a stable name",
        )
    real = path.resolve()
    st = real.stat()
    group = _group_name(st.st_gid)
    if not os.access(real, os.R_OK | os.W_OK):
        return Check(
            name,
            "FAIL",
            f"{real} (group {group}, mode {st.st_mode & 0o777:o}) is not readable/writable",
            f"add the service user to group {group} (SupplementaryGroups={group})",
        )
    where = f" -> {real}" if real != path else ""
    return Check(name, "OK", f"accessible{where} (group {group})")


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


# -- Modbus slaves ----------------------------------------------------------------------
async def check_modbus_slaves(
    bus_cfg: ModbusBusConfig,
    devices: Sequence[tuple[str, ModbusDeviceConfig]],
    timeout: float,
    *,
    daemon_running: bool = False,
) -> list[Check]:
    """Read the first mapped register of each device (``room/device``) on the bus:
    a TCP connect proves the gateway, only an answer proves the slave."""
    if not devices:
        return []
    if daemon_running and isinstance(bus_cfg, ModbusRtuBusConfig):
        # Two masters on one RS-485 line garble each other's frames.
        return [
            Check(
                f"modbus slaves on {bus_cfg.id}",
                "WARN",
                "skipped: the running daemon owns the serial line",
                "see the devices' availability on the dashboard, or stop the daemon to check",
            )
        ]
    bus = ModbusBus(bus_cfg.model_copy(update={"timeout_s": min(bus_cfg.timeout_s, timeout)}))
    await bus.start()
    try:
        try:
            async with asyncio.timeout(timeout):
                await bus.connected()
        except TimeoutError:
            return [
                Check(_slave_name(bus_cfg, d, c), "FAIL", "bus not connected: not read")
                for d, c in devices
            ]
        return [await _read_one(bus, bus_cfg, device_id, cfg) for device_id, cfg in devices]
    finally:
        await bus.stop()


def _slave_name(bus: ModbusBusConfig, device_id: str, cfg: ModbusDeviceConfig) -> str:
    return f"modbus slave {device_id} (bus {bus.id} unit {cfg.unit})"


async def _read_one(
    bus: ModbusBus, bus_cfg: ModbusBusConfig, device_id: str, cfg: ModbusDeviceConfig
) -> Check:
    name = _slave_name(bus_cfg, device_id, cfg)
    field, spec = min(cfg.registers.items(), key=lambda kv: (kv[1].table, kv[1].address))
    what = f"{spec.table} {spec.address} ({field})"
    try:
        values = await bus.read(spec.table, cfg.unit, spec.address, 1)
    except DeviceTimeout:
        return Check(
            name,
            "FAIL",
            f"no answer reading {what}",
            "check the slave's power, its unit id and the bus wiring/termination",
        )
    except DeviceRejected as exc:
        return Check(name, "FAIL", f"answered but refused {what}: {exc}", "check the register map")
    except DriverError as exc:
        return Check(name, "FAIL", f"cannot read {what}: {exc}", "check the bus")
    return Check(name, "OK", f"read {what} = {values[0]}")


# -- camera -----------------------------------------------------------------------------
async def check_camera(door: DoorConfig | None, timeout: float, *, daemon_running: bool) -> Check:
    if door is None or door.camera is None:
        where = "no [door] section" if door is None else "door.camera unset"
        return Check("camera", "OK", f"none configured ({where}; face access off)")
    name = f"camera {door.camera}"
    live = door.camera.isdigit() or door.camera.startswith("/dev/")
    if daemon_running and live:
        return Check(
            name,
            "WARN",
            "skipped: the running daemon holds the camera",
            "see the door status on the dashboard, or stop the daemon to check",
        )
    # Looking for the extra and importing OpenCV read files: off the loop.
    problem = await asyncio.to_thread(vision_problem)
    if problem is not None:
        return Check(name, "FAIL", problem, "install the [vision] extra (docs/deploy.md)")
    try:
        # from_uri looks at the path (stat): off the loop too.
        source = await asyncio.to_thread(_open_camera, door)
    except ValueError as exc:
        return Check(name, "FAIL", str(exc), "set door.camera to a device, URL, file or folder")
    await source.start()
    try:
        async with asyncio.timeout(timeout):
            async for frame in source.frames():
                height, width = frame.image.shape[:2]
                return Check(name, "OK", f"read a {width}x{height} frame")
    except TimeoutError:
        pass
    finally:
        await source.stop()
    why = source.last_error or f"no frame in {timeout:g} s"
    return Check(name, "FAIL", why, "is the camera plugged in / the stream reachable?")


# -- cloud ------------------------------------------------------------------------------
# A page past any real cursor: authenticated, read-only, empty.
PROBE = "sync/pull?after=4611686018427387904&limit=1"


async def check_cloud(cloud: CloudSyncConfig | None, timeout: float) -> Check:
    if cloud is None:
        return Check("cloud", "OK", "none configured (stand-alone site)")
    from sync.client import node_authorization
    from sync.errors import ConfigError as SyncConfigError

    name = f"cloud {cloud.base_url}"
    try:
        secret = cloud.node_secret()
    except SyncConfigError as exc:
        return Check(name, "FAIL", str(exc), CREDENTIALS_FIX)
    headers = {"Authorization": node_authorization(cloud.node_id, secret)}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http,
            http.get(cloud.api_root + PROBE, headers=headers) as resp,
        ):
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        detail = str(exc) or type(exc).__name__
        return Check(name, "FAIL", f"unreachable: {detail}", "check the URL, DNS and the uplink")
    if status in (401, 403):
        return Check(
            name,
            "FAIL",
            f"node {cloud.node_id} refused (HTTP {status})",
            "check the coresync-node-secret credential against the cloud's node registration",
        )
    if status != 200:
        return Check(name, "FAIL", f"HTTP {status} from the sync API", "check base_url")
    return Check(name, "OK", f"reachable, node {cloud.node_id} accepted")


def _open_camera(door: DoorConfig) -> FrameSource:
    """Imports OpenCV (the first time) and opens the door's camera source."""
    from vision.camera import from_uri

    return from_uri(door.camera or "", False, door.camera_fps)
