"""``coresync-edge doctor``: is this box ready to run the site config?

Each check yields one line, OK / WARN / FAIL, with what to fix.  The checks
talk to the real things: an MQTT CONNECT with the config's credentials, a
TCP connect to each Modbus gateway, the serial devices' permissions, free
disk, the databases' quick_check, the key file's mode and the clock.
"""

from __future__ import annotations

import asyncio
import grp
import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import aiomqtt

from drivers.modbus.config import ModbusRtuBusConfig, ModbusTcpBusConfig
from drivers.mqtt.config import MqttBrokerConfig
from drivers.mqtt.errors import MqttCredentialError
from edge.config import SiteConfig, load_config
from edge.errors import ConfigError
from edge.ops.layout import DATABASES, template_key_path

Status = Literal["OK", "WARN", "FAIL"]
MIN_YEAR = 2025
DISK_FAIL_BYTES = 200 * 1024 * 1024
DISK_WARN_BYTES = 1024 * 1024 * 1024


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None

    def line(self) -> str:
        text = f"{self.status:<4} {self.name}: {self.detail}"
        return text + (f"\n       fix: {self.fix}" if self.fix else "")


def exit_code(checks: list[Check]) -> int:
    return 1 if any(c.status == "FAIL" for c in checks) else 0


# -- MQTT -------------------------------------------------------------------------------
async def check_mqtt(cfg: MqttBrokerConfig, timeout: float) -> Check:
    name = f"mqtt broker {cfg.host}:{cfg.port}"
    try:
        secret = cfg.resolve_secret()
    except MqttCredentialError as exc:
        return Check(
            name,
            "FAIL",
            str(exc),
            "run with --credentials-dir /etc/coresync/credentials (as root) or set the variable",
        )
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


# -- Modbus -----------------------------------------------------------------------------
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


# -- local checks -----------------------------------------------------------------------
def check_data_dir(data_dir: Path) -> list[Check]:
    name = f"data dir {data_dir}"
    if not data_dir.exists():
        parent = next((p for p in data_dir.parents if p.exists()), Path("/"))
        if os.access(parent, os.W_OK):
            return [
                Check(name, "WARN", "does not exist yet; created on first start"),
                check_disk(parent),
            ]
        return [
            Check(
                name,
                "FAIL",
                "does not exist and cannot be created",
                "create it, owned by the service user",
            )
        ]
    out = []
    try:
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".doctor-"):
            pass
        mode = data_dir.stat().st_mode & 0o777
        if mode & 0o077:
            out.append(
                Check(
                    name,
                    "WARN",
                    f"writable, but mode {mode:o} lets others in",
                    f"chmod 700 {data_dir}",
                )
            )
        else:
            out.append(Check(name, "OK", f"writable, mode {mode:o}"))
    except OSError as exc:
        out.append(
            Check(name, "FAIL", f"not writable: {exc.strerror}", "chown it to the service user")
        )
    out.append(check_disk(data_dir))
    out.extend(check_databases(data_dir))
    out.append(check_key_file(data_dir))
    return out


def check_disk(data_dir: Path) -> Check:
    usage = shutil.disk_usage(data_dir)
    free_mb = usage.free / 1024 / 1024
    detail = f"{free_mb:,.0f} MB free of {usage.total / 1024 / 1024:,.0f} MB"
    if usage.free < DISK_FAIL_BYTES:
        return Check("disk space", "FAIL", detail, "free space: writes fail when the disk fills")
    if usage.free < DISK_WARN_BYTES or usage.free < usage.total * 0.1:
        return Check("disk space", "WARN", detail, "less than 1 GB or 10 % free: clean up soon")
    return Check("disk space", "OK", detail)


def check_databases(data_dir: Path) -> list[Check]:
    out = []
    for name in DATABASES:
        path = data_dir / name
        if not path.is_file():
            continue
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
            try:
                (result,) = conn.execute("PRAGMA quick_check").fetchone()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            out.append(Check(f"database {name}", "FAIL", str(exc), "restore from a backup"))
            continue
        if result == "ok":
            out.append(Check(f"database {name}", "OK", "quick_check ok"))
        else:
            out.append(
                Check(
                    f"database {name}",
                    "FAIL",
                    f"quick_check: {result}",
                    "restore from a backup (docs/operations.md)",
                )
            )
    return out


def check_key_file(data_dir: Path) -> Check:
    path = template_key_path(data_dir)
    if path is None:
        return Check("template key", "OK", "none present (vision not enrolled yet)")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        return Check("template key", "FAIL", f"{path} has mode {mode:o}", f"chmod 600 {path}")
    return Check("template key", "OK", f"{path} mode {mode:o}")


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
    exe = shutil.which("timedatectl")
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


# -- all --------------------------------------------------------------------------------
async def run_checks(
    config_path: Path, *, data_dir: Path | None = None, timeout: float = 3.0
) -> list[Check]:
    checks: list[Check] = []
    try:
        cfg: SiteConfig | None = load_config(config_path)
    except ConfigError as exc:
        cfg = None
        problems = "; ".join(exc.problems)
        checks.append(
            Check(f"config {config_path}", "FAIL", problems, "coresync-edge validate-config")
        )
    if cfg is not None:
        checks.append(Check(f"config {config_path}", "OK", f"site {cfg.site.id}"))
        if cfg.mqtt is not None:
            checks.append(await check_mqtt(cfg.mqtt, timeout))
        for bus in cfg.modbus_buses:
            if isinstance(bus, ModbusTcpBusConfig):
                checks.append(await check_modbus_tcp(bus, timeout))
            else:
                checks.append(check_serial_port(bus))
        # No camera section in the site config yet: nothing to open.
        checks.append(Check("camera", "OK", "none configured (skipped)"))
        checks.extend(check_data_dir(data_dir or cfg.storage.data_dir))
    checks.extend(await check_clock())
    return checks
