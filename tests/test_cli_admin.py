"""``coresync-edge events | tablets | users`` run as the real console script
against the data dir of a running demo daemon (real Mosquitto, real SQLite),
and once more after the daemon has stopped."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port

EXE = Path(sys.executable).parent / "coresync-edge"


@dataclass
class Daemon:
    data_dir: Path
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=30)


def start_demo(data_dir: Path) -> Daemon:
    port = free_port()
    log = data_dir.parent / f"{data_dir.name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(EXE), "demo", "--data-dir", str(data_dir), "--http-port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    daemon = Daemon(data_dir, f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + 60
    while "Press Ctrl-C to stop." not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            daemon.stop()
            raise AssertionError("demo did not start:\n" + log.read_text(errors="replace"))
        time.sleep(0.1)
    return daemon


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    daemon = start_demo(tmp_path_factory.mktemp("cli-admin") / "data")
    try:
        yield daemon
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.log.read_text(errors="replace")


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXE), *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def api(
    daemon: Daemon, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(daemon.url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def login(daemon: Daemon, username: str, password: str) -> tuple[int, Any]:
    return api(daemon, "POST", "/api/v1/auth/login", {"username": username, "password": password})


def admin_token(daemon: Daemon) -> str:
    password = (daemon.data_dir / "initial-admin-password").read_text().strip()
    status, body = login(daemon, "admin", password)
    assert status == 200, body
    return str(body["token"])


def password_from(result: subprocess.CompletedProcess[str]) -> str:
    """Not a terminal: the CLI names a 0600 file instead of printing the secret."""
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.split(" is in ")[1].split(" (mode")[0])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    password = path.read_text().strip()
    assert password not in result.stdout + result.stderr
    return password


def test_user_added_by_the_cli_logs_in_over_the_api(demo: Daemon) -> None:
    password = password_from(cli(demo.data_dir, "users", "add", "ana", "--role", "manager"))
    status, body = login(demo, "ana", password)
    assert status == 200 and body["role"] == "manager", body

    listed = cli(demo.data_dir, "users", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {"username": "ana", "role": "manager", "disabled": False} in [
        {k: u[k] for k in ("username", "role", "disabled")} for u in json.loads(listed.stdout)
    ]
    _, audit = api(demo, "GET", "/api/v1/audit?action=user.create", token=admin_token(demo))
    entry = next(e for e in audit["entries"] if e["target"] == "ana")
    assert entry["actor"].startswith("cli:") and entry["result"] == "ok"

    again = cli(demo.data_dir, "users", "add", "ana")
    assert again.returncode == 2 and "'ana' already exists" in again.stderr


def test_passwd_role_and_disable(demo: Daemon) -> None:
    old = password_from(cli(demo.data_dir, "users", "add", "ben"))
    new = password_from(cli(demo.data_dir, "users", "passwd", "ben"))
    assert new != old
    assert login(demo, "ben", old)[0] == 401
    assert login(demo, "ben", new)[0] == 200

    assert cli(demo.data_dir, "users", "role", "ben", "manager").returncode == 0
    status, body = login(demo, "ben", new)
    assert status == 200 and body["role"] == "manager"

    disabled = cli(demo.data_dir, "users", "disable", "ben")
    assert disabled.returncode == 0 and "disabled" in disabled.stdout
    assert login(demo, "ben", new)[0] == 401
    assert cli(demo.data_dir, "users", "enable", "ben").returncode == 0
    assert login(demo, "ben", new)[0] == 200

    assert cli(demo.data_dir, "users", "delete", "ben").returncode == 0
    listed = json.loads(cli(demo.data_dir, "users", "list", "--json").stdout)
    assert "ben" not in [u["username"] for u in listed]


def test_the_last_admin_cannot_be_removed(demo: Daemon) -> None:
    for action in (["delete", "admin"], ["disable", "admin"], ["role", "admin", "staff"]):
        result = cli(demo.data_dir, "users", *action)
        assert result.returncode == 2, result
        assert "'admin' is the last enabled admin" in result.stderr
    admin_token(demo)  # still an enabled admin with the same password

    password_from(cli(demo.data_dir, "users", "add", "boss", "--role", "admin"))
    assert cli(demo.data_dir, "users", "disable", "admin").returncode == 0
    # Now boss is the last enabled admin.
    refused = cli(demo.data_dir, "users", "delete", "boss")
    assert refused.returncode == 2 and "'boss' is the last enabled admin" in refused.stderr
    assert cli(demo.data_dir, "users", "enable", "admin").returncode == 0
    admin_token(demo)


def test_unknown_names_are_refused_by_name(demo: Daemon) -> None:
    for args, name in (
        (["users", "passwd", "ghost"], "'ghost'"),
        (["users", "delete", "ghost"], "'ghost'"),
        (["users", "role", "ghost", "admin"], "'ghost'"),
        (["users", "add", "Not A Name"], "'Not A Name'"),
        (["tablets", "revoke", "tab-nope"], "'tab-nope'"),
    ):
        result = cli(demo.data_dir, *args)
        assert result.returncode == 2, result
        assert name in result.stderr and "Traceback" not in result.stderr
    missing = cli(demo.data_dir.parent / "nowhere", "users", "list")
    assert missing.returncode == 2 and "nowhere" in missing.stderr


def test_a_revoked_tablet_token_gets_401(demo: Daemon) -> None:
    token = admin_token(demo)
    status, code = api(demo, "POST", "/api/v1/rooms/treatment-1/pairing-codes", {}, token)
    assert status == 201, code
    status, paired = api(demo, "POST", "/api/v1/tablets/pair", {"code": code["code"]})
    assert status == 201, paired
    tablet_id = paired["tablet_id"]

    listed = cli(demo.data_dir, "tablets", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    row = next(t for t in json.loads(listed.stdout) if t["tablet_id"] == tablet_id)
    assert row["room_id"] == "treatment-1" and row["revoked_at"] is None

    # The daemon has not checked this token yet, so nothing of it is cached.
    revoked = cli(demo.data_dir, "tablets", "revoke", tablet_id)
    assert revoked.returncode == 0, revoked.stderr
    assert api(demo, "GET", "/api/v1/me", token=paired["token"])[0] == 401

    again = cli(demo.data_dir, "tablets", "revoke", tablet_id)
    assert again.returncode == 2 and "already revoked" in again.stderr
    text = cli(demo.data_dir, "tablets", "list").stdout
    assert f"{tablet_id}  room treatment-1" in text and "revoked" in text
    _, audit = api(demo, "GET", "/api/v1/audit?action=tablet.revoke", token=token)
    assert any(e["target"] == tablet_id and e["actor"].startswith("cli:") for e in audit["entries"])


def wait_online(daemon: Daemon, token: str, room: str, device: str) -> None:
    """The demo prints its banner before every simulated device has reported."""
    deadline = time.monotonic() + 60
    while True:
        status, body = api(daemon, "GET", f"/api/v1/rooms/{room}", token=token)
        assert status == 200, body
        if body["devices"][device]["availability"] == "online":
            return
        assert time.monotonic() < deadline, f"{room}/{device} never came online: {body}"
        time.sleep(0.05)


def test_events_lists_door_events_and_commands_newest_first(demo: Daemon) -> None:
    token = admin_token(demo)
    wait_online(demo, token, "treatment-1", "ceiling")
    status, body = api(
        demo, "POST", "/api/v1/rooms/treatment-1/devices/ceiling/command", {"on": True}, token
    )
    assert status == 200, body
    status, body = api(demo, "POST", "/api/v1/door/unlock", {"reason": "cli test"}, token)
    assert status == 200, body

    both = cli(demo.data_dir, "events", "--json", "--limit", "200")
    assert both.returncode == 0, both.stderr
    rows = json.loads(both.stdout)
    assert [r["time"] for r in rows] == sorted((r["time"] for r in rows), reverse=True)
    # The demo camera keeps adding "unknown face" events meanwhile: look for ours.
    door = [r for r in rows if r["source"] == "door"]
    assert any(d["decision"] == "unlock" and d["method"] == "remote" for d in door), door
    commands = [r for r in rows if r["source"] == "command"]
    assert any(
        c["device"] == "treatment-1/ceiling" and c["actor"] == "staff:admin" and c["result"] == "ok"
        for c in commands
    )

    only_door = json.loads(cli(demo.data_dir, "events", "--door", "--json").stdout)
    assert only_door and {r["source"] for r in only_door} == {"door"}
    only_commands = json.loads(cli(demo.data_dir, "events", "--commands", "--json").stdout)
    assert only_commands and {r["source"] for r in only_commands} == {"command"}
    limited = json.loads(cli(demo.data_dir, "events", "--limit", "1", "--json").stdout)
    assert len(limited) == 1 and limited[0]["time"] >= rows[0]["time"]  # the newest
    text = cli(demo.data_dir, "events", "--limit", "5").stdout
    assert "door     unlock" in text or "command  ok" in text


def test_commands_work_with_the_daemon_stopped(tmp_path: Path) -> None:
    daemon = start_demo(tmp_path / "data")
    daemon.stop()
    assert daemon.proc.returncode == 0
    password = password_from(cli(daemon.data_dir, "users", "add", "late", "--role", "admin"))
    assert cli(daemon.data_dir, "users", "delete", "admin").returncode == 0
    assert cli(daemon.data_dir, "events").returncode == 0
    # The next start finds the CLI's admin, and only it.
    daemon = start_demo(daemon.data_dir)
    try:
        status, body = login(daemon, "late", password)
        assert status == 200 and body["role"] == "admin", body
    finally:
        daemon.stop()
