"""``coresync-edge enroll`` / ``members`` as real subprocesses on a real data dir,
with real photos through the real vision worker (../shared/faces/dev)."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from edge.config import load_config
from edge.service import open_shop
from tests.test_api_support import SITE

REPO = Path(__file__).resolve().parent.parent
DOOR = """
[door]
room = "entrance"
lock = "door"
liveness = { mode = "off" }
"""


@dataclass
class Site:
    config: Path
    data: Path
    alex: str
    rose: str

    def argv(self, command: str, *rest: str) -> list[str]:
        files = ["--config", str(self.config), "--data-dir", str(self.data)]
        return [str(Path(sys.executable).parent / "coresync-edge"), command, *files, *rest]

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=timeout,
        )


def write_site(tmp: Path, door: str = DOOR) -> Path:
    text = SITE.format(site="cli-spa", host="127.0.0.1", port=1883, base="cli-z2m") + door
    path = tmp / "site.toml"
    path.write_text(text)
    return path


@pytest.fixture
def site(tmp_path: Path) -> Site:
    config = write_site(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    shop = open_shop(load_config(config), data)
    shop.migrate()
    ids = []
    for name in ("Alex Lacamoire", "Rose Leslie"):
        member = shop.create_member(
            {
                "name": name,
                "email": f"{name.split()[0].lower()}@example.com",
                "phone": "+1 555 0100",
                "date_of_birth": date(1980, 1, 1),
            }
        )
        ids.append(member.id)
    shop.db.close()
    return Site(config, data, *ids)


def list_row(site: Site, member_id: str) -> str:
    out = site.run("members", "list")
    assert out.returncode == 0, out.stderr
    return next(line for line in out.stdout.splitlines() if line.startswith(member_id))


def test_consent_first_then_enroll_list_export_withdraw(site: Site, shared_faces: Path) -> None:
    photos = [str(p) for p in sorted((shared_faces / "dev" / "alex_lacamoire").iterdir())]
    refused = site.run("enroll", "--member", site.alex, "--photos", *photos)
    assert refused.returncode == 2, refused
    assert "no active consent" in refused.stderr and "members" in refused.stderr
    assert "none" in list_row(site, site.alex)

    granted = site.run(
        "members", "consent", site.alex, "--witness", "Dana", "--purpose", "door access by face"
    )
    assert granted.returncode == 0, granted.stderr
    assert "consent #1 recorded for Alex Lacamoire" in granted.stdout
    assert "witness Dana" in granted.stdout

    enrolled = site.run("enroll", "--member", site.alex, "--photos", *photos, "--witness", "Dana")
    assert enrolled.returncode == 0, enrolled.stdout + enrolled.stderr
    for i, p in enumerate(photos, 1):
        assert f"[{i}/3] {Path(p).name}: ok" in enrolled.stdout
    assert "3 templates stored for Alex Lacamoire" in enrolled.stdout
    row = list_row(site, site.alex).split()
    assert row[-2:] == ["3", "-"] and "active" in row and "since" in row  # 3 templates, no PIN

    export = site.run("members", "export", site.alex)
    assert export.returncode == 0, export.stderr
    data = json.loads(export.stdout)
    assert data["member"]["name"] == "Alex Lacamoire"
    assert data["face_templates"]["count"] == 3
    assert data["face_templates"]["enrollments"][0]["enrolled_by"] == "Dana"
    assert "ciphertext" not in export.stdout and "nonce" not in export.stdout

    withdrawn = site.run("members", "withdraw", site.alex, "--witness", "Dana")
    assert withdrawn.returncode == 0, withdrawn.stderr
    assert "3 face templates destroyed" in withdrawn.stdout
    row = list_row(site, site.alex).split()
    assert "withdrawn" in row and row[-2] == "0"
    again = site.run("enroll", "--member", site.alex, "--photos", *photos)
    assert again.returncode == 2 and "no active consent" in again.stderr


def test_every_quality_problem_is_reported_per_photo(
    site: Site, shared_faces: Path, tmp_path: Path
) -> None:
    assert (
        site.run("members", "consent", site.rose, "--witness", "D", "--purpose", "door").returncode
        == 0
    )
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("not a photo")
    photos = [
        shared_faces / "dev" / "barack_obama" / "1.jpg",
        shared_faces / "scenes" / "two_people.jpg",
        not_image,
    ]
    out = site.run("enroll", "--member", site.rose, "--photos", *map(str, photos))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "[1/3] 1.jpg: ok" in out.stdout
    lines = out.stdout.splitlines()
    rejected = lines.index("[2/3] two_people.jpg: rejected")
    assert lines[rejected + 1].startswith("    - ")
    i = lines.index("[3/3] notes.jpg: rejected")
    assert lines[i + 1] == "    - not a JPEG/PNG image"
    assert "nothing enrolled: 2 of 3 photos failed" in out.stderr
    assert list_row(site, site.rose).split()[-2] == "0"  # no template stored


def test_refusals_name_the_problem(site: Site, tmp_path: Path) -> None:
    out = site.run("members", "consent", "nobody", "--witness", "D", "--purpose", "door")
    assert out.returncode == 2 and "'nobody': no such member" in out.stderr
    out = site.run("enroll", "--member", site.alex, "--photos", "a.jpg")
    assert out.returncode == 2 and "--photos: give 3 to 5 photos, got 1" in out.stderr
    out = site.run("enroll", "--member", site.alex, "--photos", "a.jpg", "b.jpg", "c.jpg")
    assert out.returncode == 2 and "--photos: a.jpg is not a file" in out.stderr
    out = site.run(
        "members",
        "consent",
        site.alex,
        "--witness",
        "D",
        "--purpose",
        "x",
        "--retention-days",
        "9999",
    )
    assert out.returncode == 2 and "--retention-days" in out.stderr
    out = site.run("members", "export", "ghost")
    assert out.returncode == 2 and "nothing stored" in out.stderr
    (tmp_path / "no-door").mkdir()
    no_door = write_site(tmp_path / "no-door", door="")
    proc = subprocess.run(
        [sys.executable, "-m", "edge.door.cli", "members", "--config", str(no_door), "list"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 2 and "no [door] section" in proc.stderr


# clock_nanosleep and nanosleep: what SQLite's busy handler sleeps in.
SLEEP_SYSCALLS = {"x86_64": {"230", "35"}, "aarch64": {"115", "101"}}


def waiting_on_database(proc: subprocess.Popen[str], db: Path) -> bool:
    """``proc`` holds ``db`` open and one of its threads sleeps right now."""
    assert proc.poll() is None, proc.communicate()  # it must wait, not fail
    try:
        fds = os.listdir(f"/proc/{proc.pid}/fd")
        has_db = any(os.readlink(f"/proc/{proc.pid}/fd/{fd}") == str(db) for fd in fds)
        # The CLI talks to SQLite on a worker thread: look at every thread.
        syscalls = {
            (task / "syscall").read_text().split()[0]
            for task in Path(f"/proc/{proc.pid}/task").iterdir()
        }
    except (OSError, IndexError):  # the process is between states; look again
        return False
    return has_db and bool(syscalls & SLEEP_SYSCALLS.get(platform.machine(), {"230", "35"}))


def wait_for(cond: Callable[[], bool], proc: subprocess.Popen[str], within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while not cond():
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"not seen in {within_s} s; the CLI said {proc.communicate()}")
        time.sleep(0.02)


def test_waits_for_a_writer_holding_the_door_database(site: Site) -> None:
    """The daemon holding a write transaction longer than sqlite3's 5 s default:
    the CLI waits for it (busy timeout) instead of failing with 'locked'."""
    assert site.run("members", "list").returncode == 0  # creates door.db
    holder = sqlite3.connect(site.data / "door.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute(
        "INSERT INTO door_events (ts, method, decision, reason) VALUES (?, 'system', 'error', 'x')",
        (time.time(),),
    )
    proc = subprocess.Popen(
        site.argv("members", "consent", site.alex, "--witness", "D", "--purpose", "door"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    # Seen waiting: door.db open and asleep in SQLite's busy handler, not failed.
    wait_for(lambda: waiting_on_database(proc, site.data / "door.db"), proc)
    holder.execute("COMMIT")
    holder.close()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "recorded for Alex Lacamoire" in out
