"""``doctor``'s local checks: the data dir, free disk, each data file of
:data:`edge.ops.layout.DATA_FILES` (owner, mode, ``quick_check``) and the key.

The advice never destroys data: "restore from a backup" is given only for a
file SQLite itself reports as damaged, and never while the disk is full (a
full disk makes healthy files fail to open; free space first).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

from edge.ops.checks import Check
from edge.ops.layout import DATA_FILES, file_problems, template_key_path

DISK_FAIL_BYTES = 200 * 1024 * 1024
DISK_WARN_BYTES = 1024 * 1024 * 1024
# SQLite's words for a file that is really damaged (not merely unreachable).
DAMAGED = ("malformed", "not a database", "corrupt")
FREE_SPACE_FIRST = "free disk space first, then run doctor again (the files may well be fine)"


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
    disk = check_disk(data_dir)
    disk_full = disk.status == "FAIL"
    out = [_check_dir_writable(data_dir, disk_full), disk]
    out.extend(check_databases(data_dir, disk_full=disk_full))
    out.append(check_key_file(data_dir))
    return out


def _check_dir_writable(data_dir: Path, disk_full: bool) -> Check:
    name = f"data dir {data_dir}"
    problems = [p for p in file_problems(data_dir) if p.path == data_dir]
    if problems:
        return Check(name, "FAIL", problems[0].detail, problems[0].fix)
    try:
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".doctor-"):
            pass
    except OSError as exc:
        fix = FREE_SPACE_FIRST if disk_full else "chown it to the service user"
        return Check(name, "FAIL", f"not writable: {exc.strerror}", fix)
    mode = data_dir.stat().st_mode & 0o777
    if mode & 0o077:
        return Check(
            name, "WARN", f"writable, but mode {mode:o} lets others in", f"chmod 700 {data_dir}"
        )
    return Check(name, "OK", f"writable, mode {mode:o}")


def check_disk(data_dir: Path) -> Check:
    usage = shutil.disk_usage(data_dir)
    free_mb = usage.free / 1024 / 1024
    detail = f"{free_mb:,.0f} MB free of {usage.total / 1024 / 1024:,.0f} MB"
    if usage.free < DISK_FAIL_BYTES:
        return Check("disk space", "FAIL", detail, "free space: writes fail when the disk fills")
    if usage.free < DISK_WARN_BYTES or usage.free < usage.total * 0.1:
        return Check("disk space", "WARN", detail, "less than 1 GB or 10 % free: clean up soon")
    return Check("disk space", "OK", detail)


def check_databases(data_dir: Path, *, disk_full: bool = False) -> list[Check]:
    """One line per data file present: owner and mode first, then quick_check."""
    problems = file_problems(data_dir)
    out = []
    for spec in DATA_FILES:
        path = data_dir / spec.name
        if not path.is_file():
            continue
        name = f"database {spec.name}"
        mine = [p for p in problems if p.path.name.startswith(spec.name)]
        if mine:
            detail = "; ".join(f"{p.path.name} {p.detail}" for p in mine)
            fix = "; ".join(p.fix for p in mine)
            out.append(Check(name, "FAIL", f"the daemon cannot write it: {detail}", fix))
            continue
        out.append(_quick_check(name, path, disk_full))
    return out


def _quick_check(name: str, path: Path, disk_full: bool) -> Check:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            (result,) = conn.execute("PRAGMA quick_check").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        text = str(exc)
        if disk_full:
            return Check(name, "FAIL", f"cannot check it: {text}", FREE_SPACE_FIRST)
        if "locked" in text:
            return Check(name, "WARN", f"busy: {text}", "run doctor again in a moment")
        if any(word in text for word in DAMAGED):
            return Check(name, "FAIL", f"damaged: {text}", _restore_advice())
        return Check(name, "FAIL", f"cannot open it: {text}", "check the disk (dmesg), the mount")
    if result == "ok":
        return Check(name, "OK", "quick_check ok")
    return Check(name, "FAIL", f"quick_check: {result}", _restore_advice())


def _restore_advice() -> str:
    return (
        "stop the daemon and restore the newest backup (docs/operations.md); restore keeps "
        "this file in pre-restore-<stamp>/, nothing is deleted"
    )


def check_key_file(data_dir: Path) -> Check:
    path = template_key_path(data_dir)
    if path is None:
        return Check("template key", "OK", "none present (vision not enrolled yet)")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        return Check("template key", "FAIL", f"{path} has mode {mode:o}", f"chmod 600 {path}")
    return Check("template key", "OK", f"{path} mode {mode:o}")
