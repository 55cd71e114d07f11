"""``doctor`` against a real password-protected Mosquitto, a real pymodbus
gateway, a real pseudo-terminal as serial port, and the failing cases."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.modbus.simulator import ThermostatGateway
from edge.ops.doctor import Check, check_clock, exit_code, run_checks
from edge.ops.layout import KEY_FILE
from tests.conftest import free_port, wait_port
from tests.parts import missing

PASSWORD = "doctor-Secret-93f1"


@pytest.fixture
def secured_broker(tmp_path: Path) -> Iterator[int]:
    """A private Mosquitto that only lets user 'edge' in with PASSWORD."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    passwd = shutil.which("mosquitto_passwd")
    if not Path(exe).exists() or passwd is None:
        missing("Mosquitto", "mosquitto and mosquitto_passwd")
    pw_file = tmp_path / "passwd"
    subprocess.run([passwd, "-c", "-b", str(pw_file), "edge", PASSWORD], check=True)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {pw_file}\n"
        "persistence false\nset_tcp_nodelay true\n" + ("user root\n" if os.geteuid() == 0 else "")
        # Started as root, Mosquitto drops to user "mosquitto", who cannot
        # read a password file under pytest's 0700 tmp dir.
    )
    proc = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        wait_port("127.0.0.1", port)
        yield port
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.fixture
async def gateway() -> AsyncIterator[int]:
    port = free_port()
    gw = ThermostatGateway(port=port, units=[1])
    await gw.start()
    try:
        yield port
    finally:
        await gw.stop()


@pytest.fixture
def pty_path() -> Iterator[str]:
    leader, follower = os.openpty()
    try:
        yield os.ttyname(follower)
    finally:
        os.close(leader)
        os.close(follower)


def site(tmp_path: Path, mqtt_port: int, modbus_port: int, serial: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(
        f"""
[site]
id = "doctor-test"
name = "Doctor test"
[storage]
data_dir = "{tmp_path / "data"}"
[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
username = "edge"
password_env = "CORESYNC_TEST_MQTT_PASSWORD"
[[modbus_buses]]
id = "gw"
type = "tcp"
host = "127.0.0.1"
port = {modbus_port}
[[modbus_buses]]
id = "rs485"
type = "rtu"
port = "{serial}"
[[rooms]]
id = "r1"
name = "Room"
"""
    )
    (tmp_path / "data").mkdir(mode=0o700)
    return path


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name.split(" (")[0].split(" 127")[0]: c for c in checks}


async def test_all_green(
    tmp_path: Path,
    secured_broker: int,
    gateway: int,
    pty_path: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CORESYNC_TEST_MQTT_PASSWORD", PASSWORD)
    checks = await run_checks(site(tmp_path, secured_broker, gateway, pty_path))
    got = by_name(checks)
    assert got["mqtt broker"].status == "OK", got["mqtt broker"]
    assert "as edge" in got["mqtt broker"].detail
    assert got["modbus bus gw"].status == "OK"
    assert got["modbus bus rs485"].status == "OK", got["modbus bus rs485"]
    assert got[f"data dir {tmp_path / 'data'}"].status == "OK"
    assert got["disk space"].status in ("OK", "WARN")
    assert [c for c in checks if c.status == "FAIL"] == []
    assert exit_code(checks) == 0


async def test_each_failure_is_named_with_a_fix(
    tmp_path: Path,
    secured_broker: int,
    pty_path: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CORESYNC_TEST_MQTT_PASSWORD", "wrong-password")
    closed_port = free_port()
    cfg = site(tmp_path, secured_broker, closed_port, "/dev/ttyUSB-coresync-missing")
    key = tmp_path / "data" / KEY_FILE
    key.write_bytes(os.urandom(32))
    key.chmod(0o644)
    checks = await run_checks(cfg, timeout=2)
    got = by_name(checks)
    assert got["mqtt broker"].status == "FAIL"
    assert "refused" in got["mqtt broker"].detail and got["mqtt broker"].fix
    assert "wrong-password" not in "\n".join(c.line() for c in checks)
    assert got["modbus bus gw"].status == "FAIL"
    assert got["modbus bus rs485"].status == "FAIL"
    assert "does not exist" in got["modbus bus rs485"].detail
    assert got["template key"].status == "FAIL" and got["template key"].fix == f"chmod 600 {key}"
    assert exit_code(checks) == 1


async def test_missing_credential_and_bad_config(tmp_path: Path, pty_path: str) -> None:
    cfg = site(tmp_path, free_port(), free_port(), pty_path)
    os.environ.pop("CORESYNC_TEST_MQTT_PASSWORD", None)
    got = by_name(await run_checks(cfg, timeout=1))
    assert got["mqtt broker"].status == "FAIL"
    assert "CORESYNC_TEST_MQTT_PASSWORD" in got["mqtt broker"].detail
    bad = tmp_path / "bad.toml"
    bad.write_text('[site]\nid = "x"\nname = "x"\ncolour = "red"\n')
    checks = await run_checks(bad)
    assert checks[0].status == "FAIL" and "colour" in checks[0].detail


async def test_clock_before_2025_fails() -> None:
    (clock, *_) = await check_clock(datetime(2000, 1, 1, tzinfo=UTC))
    assert clock.status == "FAIL" and clock.fix and "NTP" in clock.fix


def test_cli_exit_code_and_output(tmp_path: Path, pty_path: str) -> None:
    cfg = site(tmp_path, free_port(), free_port(), pty_path)
    done = subprocess.run(
        [sys.executable, "-m", "edge.cli_ops", "doctor", "--config", str(cfg), "--timeout", "1"],
        capture_output=True,
        text=True,
        env={**os.environ, "CORESYNC_TEST_MQTT_PASSWORD": "x"},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("FAIL mqtt broker") for line in lines)
    assert any(line.startswith("OK   modbus bus rs485") for line in lines)
    assert "checks:" in lines[-1]
