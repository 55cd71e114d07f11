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


CLIMATE = """
  [[rooms.devices]]
  id = "{id}"
  kind = "climate"
  type = "modbus"
  bus = "gw"
  unit = {unit}
  [rooms.devices.registers]
  mode = {{ table = "holding", address = 0, dtype = "uint16" }}
  current_c = {{ table = "input", address = 0, dtype = "int16", scale = 0.1 }}
"""
LOCK = """
  [[rooms.devices]]
  id = "door"
  kind = "lock"
  type = "zigbee2mqtt"
  friendly_name = "doctor/door"
"""
CLIP = "video/short_hamilton_clip.mp4"  # under the shared_faces fixture


def door(camera: str | None) -> str:
    line = "" if camera is None else f'camera = "{camera}"\n'
    return f'[door]\nroom = "r1"\nlock = "door"\n{line}'


def site(
    tmp_path: Path,
    mqtt_port: int,
    modbus_port: int,
    serial: str,
    devices: str = "",
    extra: str = "",
) -> Path:
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
        + devices
        + extra
    )
    (tmp_path / "data").mkdir(mode=0o700, exist_ok=True)
    return path


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name.split(" (")[0].split(" 127")[0]: c for c in checks}


async def test_all_green(
    tmp_path: Path,
    secured_broker: int,
    gateway: int,
    pty_path: str,
    monkeypatch: pytest.MonkeyPatch,
    shared_faces: Path,
) -> None:
    monkeypatch.setenv("CORESYNC_TEST_MQTT_PASSWORD", PASSWORD)
    clip = shared_faces / CLIP
    devices = CLIMATE.format(id="t1", unit=1) + LOCK
    cfg = site(tmp_path, secured_broker, gateway, pty_path, devices, door(str(clip)))
    checks = await run_checks(cfg)
    got = by_name(checks)
    slave = got["modbus slave r1/t1"]
    assert slave.status == "OK" and "read holding 0 (mode) =" in slave.detail, slave
    camera = got[f"camera {clip}"]
    assert camera.status == "OK" and "frame" in camera.detail, camera
    assert got["cloud"].status == "OK" and "stand-alone" in got["cloud"].detail
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
    # (the slaves of an unreachable gateway are not read: the bus line says why)
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


async def test_a_dead_slave_behind_a_live_gateway_and_a_dead_camera_fail(
    tmp_path: Path, gateway: int, pty_path: str
) -> None:
    not_a_video = tmp_path / "camera.mp4"
    not_a_video.write_bytes(b"this is not a video")
    devices = CLIMATE.format(id="t1", unit=1) + CLIMATE.format(id="t2", unit=2) + LOCK
    cfg = site(tmp_path, free_port(), gateway, pty_path, devices, door(str(not_a_video)))
    got = by_name(await run_checks(cfg, timeout=2))
    assert got["modbus bus gw"].status == "OK"  # the gateway answers TCP...
    assert got["modbus slave r1/t1"].status == "OK"
    dead = got["modbus slave r1/t2"]  # ...but unit 2 does not
    assert dead.status == "FAIL" and "no answer" in dead.detail and dead.fix, dead
    camera = got[f"camera {not_a_video}"]
    assert camera.status == "FAIL" and camera.fix, camera
    missing = tmp_path / "gone.mp4"
    cfg = site(tmp_path, free_port(), gateway, pty_path, LOCK, door(str(missing)))
    camera = by_name(await run_checks(cfg, timeout=2))[f"camera {missing}"]
    assert camera.status == "FAIL" and "not a device index" in camera.detail
    # A door without a camera is the only "none configured".
    cfg = site(tmp_path, free_port(), gateway, pty_path, LOCK, door(None))
    assert "none configured" in by_name(await run_checks(cfg, timeout=1))["camera"].detail


def test_cloud_reachable_with_the_node_secret_and_refused_with_a_wrong_one(
    tmp_path: Path, pty_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not an async test: starting the cloud process blocks.
    import asyncio

    from tests.sync_helpers import running_cloud

    with running_cloud(tmp_path / "cloud.db") as (cloud, proc):
        section = f'[cloud]\nbase_url = "{proc.url}"\nnode_id = "edge-1"\n'
        cfg = site(tmp_path, free_port(), free_port(), pty_path, extra=section)
        monkeypatch.setenv("CORESYNC_NODE_SECRET", cloud.secrets["edge-1"])
        ok = by_name(asyncio.run(run_checks(cfg, timeout=5)))[f"cloud {proc.url}"]
        assert ok.status == "OK" and "node edge-1 accepted" in ok.detail, ok
        monkeypatch.setenv("CORESYNC_NODE_SECRET", "not-the-secret-of-edge-1")
        checks = asyncio.run(run_checks(cfg, timeout=5))
        refused = by_name(checks)[f"cloud {proc.url}"]
        assert refused.status == "FAIL" and "refused" in refused.detail and refused.fix
        assert "not-the-secret" not in "\n".join(c.line() for c in checks)
    down = by_name(asyncio.run(run_checks(cfg, timeout=2)))[f"cloud {proc.url}"]
    assert down.status == "FAIL" and "unreachable" in down.detail


def _db(path: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (randomblob(4000))")
    conn.commit()
    conn.close()


async def test_wrongly_owned_and_read_only_data_files_are_named_with_a_safe_fix(
    tmp_path: Path, pty_path: str
) -> None:
    cfg = site(tmp_path, free_port(), free_port(), pty_path)
    data = tmp_path / "data"
    for name in ("edge.db", "shop.db", "door.db"):
        _db(data / name)
    (data / "door.db").chmod(0o400)
    if os.geteuid() == 0:
        os.chown(data / "shop.db", 65534, 65534)
    got = by_name(await run_checks(cfg, timeout=1))
    assert got["database edge.db"].status == "OK"
    door_db = got["database door.db"]
    assert door_db.status == "FAIL" and "read-only (mode 400)" in door_db.detail
    assert door_db.fix == f"chmod u+w {data / 'door.db'}"
    if os.geteuid() == 0:
        shop = got["database shop.db"]
        assert shop.status == "FAIL" and "owned by uid 65534" in shop.detail, shop
        assert shop.fix == f"chown root {data / 'shop.db'}"
    assert exit_code(list(got.values())) == 1


async def test_a_full_disk_never_advises_restoring_healthy_files(
    tmp_path: Path, pty_path: str
) -> None:
    from tests.test_ops_durability import tiny_filesystem

    with tiny_filesystem(tmp_path / "mnt", 1024) as mnt:
        data = mnt / "data"
        data.mkdir(mode=0o700)
        for name in ("edge.db", "shop.db", "door.db"):
            _db(data / name)
        free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
        (mnt / "filler").write_bytes(b"\0" * free)
        cfg = site(tmp_path, free_port(), free_port(), pty_path)
        checks = await run_checks(cfg, data_dir=data, timeout=1)
        got = by_name(checks)
        assert got["disk space"].status == "FAIL"
        advice = "\n".join(c.fix or "" for c in checks).lower()
        assert "restore" not in advice, "\n".join(c.line() for c in checks)
        assert got[f"data dir {data}"].fix != "chown it to the service user"
