"""``coresync-edge doctor``: is this box ready to run the site config?

Each check yields one line, OK / WARN / FAIL, with what to fix (never a fix
that destroys data).  The checks talk to the real things: an MQTT CONNECT
with the config's credentials, each Modbus gateway or serial port and one
register of every slave, a frame from the door camera, the cloud with the
node's credentials, the data files' owner, mode and ``quick_check``, free
disk, the key file's mode and the clock.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt

from drivers.modbus.config import ModbusDeviceConfig, ModbusTcpBusConfig
from drivers.mqtt.config import MqttBrokerConfig
from drivers.mqtt.errors import MqttCredentialError
from edge.config import SiteConfig, load_config
from edge.errors import ConfigError
from edge.ops.checks import CREDENTIALS_FIX, Check, Status, exit_code
from edge.ops.doctor_devices import (
    check_camera,
    check_cloud,
    check_modbus_slaves,
    check_modbus_tcp,
    check_serial_port,
)
from edge.ops.doctor_files import check_data_dir
from edge.ops.layout import lock_holder

__all__ = ["Check", "Status", "check_clock", "exit_code", "run_checks"]
MIN_YEAR = 2025


# -- MQTT -------------------------------------------------------------------------------
async def check_mqtt(cfg: MqttBrokerConfig, timeout: float) -> Check:
    name = f"mqtt broker {cfg.host}:{cfg.port}"
    try:
        secret = cfg.resolve_secret()
    except MqttCredentialError as exc:
        return Check(name, "FAIL", str(exc), CREDENTIALS_FIX)
    tls = {}
    if cfg.tls:
        tls["tls_params"] = aiomqtt.TLSParameters(
            ca_certs=None if cfg.ca_file is None else str(cfg.ca_file)
        )
    client = aiomqtt.Client(
        cfg.host,
        cfg.port,
        username=cfg.username,
        password=None if secret is None else secret.get_secret_value(),
        # Never the daemon's own client id: the broker would drop the daemon.
        identifier=f"coresync-doctor-{os.getpid()}",
        timeout=timeout,
        **tls,  # type: ignore[arg-type]
    )
    try:
        async with asyncio.timeout(timeout):
            async with client:
                pass
    except TimeoutError:
        return Check(name, "FAIL", f"no answer in {timeout:g} s", "is the broker running?")
    except aiomqtt.MqttCodeError as exc:
        who = f"user {cfg.username!r}" if cfg.username else "anonymous"
        return Check(
            name,
            "FAIL",
            f"broker refused CONNECT for {who}: {exc}",
            "check the mqtt-password credential against the broker's password file",
        )
    except (aiomqtt.MqttError, OSError) as exc:
        return Check(name, "FAIL", f"cannot connect: {exc}", "is the broker running and reachable?")
    who = f" as {cfg.username}" if cfg.username else " (anonymous)"
    return Check(name, "OK", f"CONNECT accepted{who}")


async def check_clock(now: datetime | None = None) -> list[Check]:
    now = now or datetime.now(UTC)
    out = []
    if now.year < MIN_YEAR:
        out.append(
            Check(
                "clock",
                "FAIL",
                f"system time is {now:%Y-%m-%d}",
                "enable NTP (timedatectl set-ntp true); a Pi has no RTC battery by default",
            )
        )
    else:
        out.append(Check("clock", "OK", f"{now:%Y-%m-%d %H:%M} UTC"))
    exe = await asyncio.to_thread(shutil.which, "timedatectl")
    if exe is None:
        out.append(Check("ntp", "WARN", "timedatectl not found; cannot tell NTP sync state"))
        return out
    try:
        proc = await asyncio.create_subprocess_exec(
            exe,
            "show",
            "-p",
            "NTPSynchronized",
            "--value",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(5):
            stdout, stderr = await proc.communicate()
    except (OSError, TimeoutError) as exc:
        return [*out, Check("ntp", "WARN", f"timedatectl failed: {exc}")]
    answer = stdout.decode().strip()
    if proc.returncode != 0:
        why = stderr.decode().strip().splitlines()[-1:] or ["no output"]
        return [*out, Check("ntp", "WARN", f"timedatectl: {why[0]}")]
    if answer == "yes":
        return [*out, Check("ntp", "OK", "synchronized")]
    return [
        *out,
        Check(
            "ntp",
            "WARN",
            "not synchronized",
            "timedatectl set-ntp true; check the LAN reaches an NTP server",
        ),
    ]


def _daemon_running(data_dir: Path) -> bool:
    return data_dir.exists() and lock_holder(data_dir) is not None


# -- all --------------------------------------------------------------------------------
async def run_checks(
    config_path: Path, *, data_dir: Path | None = None, timeout: float = 3.0
) -> list[Check]:
    checks: list[Check] = []
    try:
        cfg: SiteConfig | None = await asyncio.to_thread(load_config, config_path)
    except ConfigError as exc:
        cfg = None
        problems = "; ".join(exc.problems)
        checks.append(
            Check(f"config {config_path}", "FAIL", problems, "coresync-edge validate-config")
        )
    if cfg is not None:
        checks.append(Check(f"config {config_path}", "OK", f"site {cfg.site.id}"))
        data = data_dir or cfg.storage.data_dir
        running = await asyncio.to_thread(_daemon_running, data)
        if cfg.mqtt is not None:
            checks.append(await check_mqtt(cfg.mqtt, timeout))
        for bus in cfg.modbus_buses:
            if isinstance(bus, ModbusTcpBusConfig):
                reach = await check_modbus_tcp(bus, timeout)
            else:
                reach = await asyncio.to_thread(check_serial_port, bus)
            checks.append(reach)
            slaves = [
                (f"{room.id}/{dev.id}", dev)
                for room in cfg.rooms
                for dev in room.devices
                if isinstance(dev, ModbusDeviceConfig) and dev.bus == bus.id
            ]
            if reach.status == "OK":
                checks.extend(
                    await check_modbus_slaves(bus, slaves, timeout, daemon_running=running)
                )
        checks.append(await check_camera(cfg.door, timeout, daemon_running=running))
        checks.append(await check_cloud(cfg.cloud, timeout))
        checks.extend(await asyncio.to_thread(check_data_dir, data))
    checks.extend(await check_clock())
    return checks
