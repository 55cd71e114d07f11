"""A real ``coresync-edge run`` meeting a data dir it cannot use: one clear
log line and exit 1, never a traceback."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edge.ops.layout import DataDirLock, file_problems

EXE = Path(sys.executable).parent / "coresync-edge"
NOBODY = 65534


def site(tmp_path: Path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(
        f"""
[site]
id = "start-faults"
name = "Start faults"
[storage]
data_dir = "{tmp_path / "data"}"
[api]
host = "127.0.0.1"
port = 0
[[rooms]]
id = "r1"
name = "Room"
"""
    )
    (tmp_path / "data").mkdir(mode=0o700)
    return path


def run(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXE), "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def errors(done: subprocess.CompletedProcess[str]) -> list[str]:
    out = done.stdout + done.stderr
    assert "Traceback" not in out, out
    return [line for line in out.splitlines() if "cannot start" in line]


def make_shop(data: Path) -> Path:
    shop = data / "shop.db"
    sqlite3.connect(shop).execute("CREATE TABLE t (x)").connection.close()
    return shop


def test_a_second_daemon_on_a_busy_data_dir_is_one_line(tmp_path: Path) -> None:
    config = site(tmp_path)
    with DataDirLock(tmp_path / "data"):
        done = run(config)
    assert done.returncode == 1, done.stdout + done.stderr
    (line,) = errors(done)
    assert f"in use by a running coresync-edge (pid {os.getpid()})" in line


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_shop_db_owned_by_another_user_is_one_line_naming_it(tmp_path: Path) -> None:
    config = site(tmp_path)
    shop = make_shop(tmp_path / "data")
    os.chown(shop, NOBODY, NOBODY)
    done = run(config)
    assert done.returncode == 1, done.stdout + done.stderr
    (line,) = errors(done)
    assert f"{shop}: owned by uid {NOBODY}, the daemon runs as uid 0" in line
    assert f"chown root {shop}" in line


def test_a_read_only_shop_db_is_one_line_naming_it(tmp_path: Path) -> None:
    config = site(tmp_path)
    shop = make_shop(tmp_path / "data")
    shop.chmod(0o400)
    done = run(config)
    assert done.returncode == 1, done.stdout + done.stderr
    (line,) = errors(done)
    assert f"{shop}: read-only (mode 400)" in line
    # Put right, the same data dir starts: nothing was changed by the refusal.
    shop.chmod(0o600)
    assert file_problems(tmp_path / "data") == []


def test_data_files_health_names_each_file_for_healthz(tmp_path: Path) -> None:
    from edge.ops.layout import data_files_health

    data = tmp_path / "data"
    data.mkdir()
    make_shop(data)
    sqlite3.connect(data / "door.db").execute("CREATE TABLE t (x)").connection.close()
    assert data_files_health(data) == {"shop.db": "ok", "door.db": "ok"}
    (data / "door.db").chmod(0o444)
    assert data_files_health(data) == {"shop.db": "ok", "door.db": "door.db read-only (mode 444)"}
