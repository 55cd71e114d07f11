"""The unit files verify with systemd-analyze and keep their hardening."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.parts import missing

UNITS = Path(__file__).resolve().parent.parent / "systemd"
INSTALL_BIN = "/opt/coresync-edge/.venv/bin"
NAMES = [
    "coresync-edge.service",
    "coresync-cloud.service",
    "coresync-edge-backup.service",
    "coresync-edge-backup.timer",
]


def directives(name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """The units with ExecStart pointing at this venv's executables."""
    venv_bin = str(Path(sys.executable).parent)
    for name in NAMES:
        text = (UNITS / name).read_text().replace(INSTALL_BIN, venv_bin)
        (tmp_path / name).write_text(text)
    return tmp_path


def _analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        missing("systemd-analyze")
    return exe


def test_units_verify(installed: Path) -> None:
    exe = _analyze()
    done = subprocess.run(
        [exe, "verify", *[str(installed / n) for n in NAMES]],
        capture_output=True,
        text=True,
        cwd=installed,
    )
    ours = [
        line for line in (done.stdout + done.stderr).splitlines() if line.startswith("coresync")
    ]
    assert done.returncode == 0 and not ours, done.stdout + done.stderr


def test_verify_catches_a_broken_unit(installed: Path) -> None:
    """The check above can fail: a typo in a directive is reported."""
    exe = _analyze()
    unit = installed / "coresync-edge.service"
    unit.write_text(unit.read_text().replace("Type=notify", "Type=notifyy"))
    done = subprocess.run([exe, "verify", str(unit)], capture_output=True, text=True)
    assert "notifyy" in done.stdout + done.stderr


def test_security_exposure_is_low(installed: Path) -> None:
    exe = _analyze()
    for name in NAMES[:3]:
        done = subprocess.run(
            [exe, "security", "--offline=true", "--no-pager", str(installed / name)],
            capture_output=True,
            text=True,
        )
        if "offline" in done.stderr and "unrecognized" in done.stderr:
            missing("systemd-analyze", "this one has no --offline (systemd < 250)")
        match = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout)
        assert match, done.stdout + done.stderr
        assert float(match.group(1)) <= 2.0, f"{name}: exposure {match.group(1)}"


def test_edge_unit_wiring() -> None:
    d = directives("coresync-edge.service")
    assert d["Type"] == ["notify"] and d["WatchdogSec"]
    assert d["User"] == ["coresync"]
    assert set(d["SupplementaryGroups"][0].split()) == {"dialout", "video"}
    assert d["ProtectSystem"] == ["strict"] and d["StateDirectory"] == ["coresync-edge"]
    assert set(d["RestrictAddressFamilies"][0].split()) == {
        "AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK",
    }  # fmt: skip
    allowed = " ".join(d["DeviceAllow"])
    for dev in ("char-ttyUSB", "char-ttyAMA", "char-video4linux"):
        assert dev in allowed
    creds = {c.split(":")[0] for c in d["LoadCredential"]}
    assert creds == {"mqtt-password", "vision-master-key"}
    # The cloud secret's line is there to uncomment, naming the config's default credential.
    unit = (UNITS / "coresync-edge.service").read_text()
    assert "\n#LoadCredential=coresync-node-secret:/etc/coresync/credentials/" in unit
    # The config's credential names must match what the unit loads.
    example = (UNITS.parent / "config" / "site.example.toml").read_text()
    assert 'password_credential = "mqtt-password"' in example


def test_backup_timer_runs_the_backup_service() -> None:
    timer = directives("coresync-edge-backup.timer")
    assert timer["OnCalendar"] and timer["Persistent"] == ["true"]
    svc = directives("coresync-edge-backup.service")
    assert " backup " in svc["ExecStart"][0] and "--include-key" not in svc["ExecStart"][0]
    # The backup key comes from a credential the backup itself never holds.
    assert [c.split(":")[0] for c in svc["LoadCredential"]] == ["backup-key"]
    assert svc["User"] == ["coresync"]
