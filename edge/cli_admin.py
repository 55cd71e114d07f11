"""``coresync-edge events | tablets | users``: the technician's view and
accounts from a shell on the box, with or without the daemon running.

They open ``<data_dir>/edge.db`` (and ``door.db`` for door events) directly.
Every file is SQLite in WAL mode: readers never block the daemon, and a write
here waits up to 30 s for the daemon's own transaction instead of failing.
Changes are audited like the LAN API's, as actor ``cli:<login user>``.

A running daemon trusts a token it has already checked for
``api.principal_cache_s`` (30 s by default): a revoked tablet or a disabled
account that was in use keeps working for at most that long.

``edge.cli`` calls :func:`register` with its subparsers and, after parsing,
:func:`dispatch`, which returns an exit code for these commands and None for
any other.  Exit codes: 0 fine, 1 the operation failed, 2 refused / bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import re
import secrets
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from edge.api import db
from edge.api.auth import Auth
from edge.api.models import USERNAME_PATTERN
from edge.api.routes_auth import _write_secret
from edge.api.settings import ApiSettings
from edge.door.errors import DoorError
from edge.door.store import DoorStore
from edge.errors import StorageError
from edge.migrations import migrate
from edge.ops.layout import DOOR_DB, EDGE_DB
from edge.store import Store

DEFAULT_DATA_DIR = Path("/var/lib/coresync-edge")
COMMANDS = ("events", "tablets", "users")
EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2
BUSY_TIMEOUT_MS = 30_000


class Refused(Exception):
    """A command the CLI will not carry out; the message says why (exit 2)."""


def register(subparsers: Any) -> None:
    """Add ``events``, ``tablets`` and ``users`` to ``coresync-edge``'s subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="daemon data dir")
    listing = argparse.ArgumentParser(add_help=False)
    listing.add_argument("--json", action="store_true", help="JSON output")

    ev = subparsers.add_parser(
        "events", parents=[common, listing], help="recent door events and device commands"
    )
    ev.add_argument("--limit", type=int, default=50, help="how many, newest first (default 50)")
    only = ev.add_mutually_exclusive_group()
    only.add_argument("--door", action="store_true", help="door events only")
    only.add_argument("--commands", action="store_true", help="device command log only")

    tablets = subparsers.add_parser("tablets", help="paired room tablets")
    tsub = tablets.add_subparsers(dest="tablets_command", required=True, metavar="ACTION")
    tsub.add_parser("list", parents=[common, listing], help="paired tablets, newest first")
    revoke = tsub.add_parser("revoke", parents=[common], help="revoke a tablet's token")
    revoke.add_argument("tablet_id", help="tablet id, as `tablets list` shows it")

    users = subparsers.add_parser("users", help="staff accounts of the LAN API")
    usub = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    usub.add_parser("list", parents=[common, listing], help="accounts and roles")
    add = usub.add_parser("add", parents=[common], help="new account with a generated password")
    add.add_argument("name", help="login name (lower case)")
    add.add_argument("--role", choices=db.ROLES, default="staff", help="default staff")
    usub.add_parser("passwd", parents=[common], help="new generated password").add_argument("name")
    role = usub.add_parser("role", parents=[common], help="change an account's role")
    role.add_argument("name")
    role.add_argument("role", choices=db.ROLES)
    for action, text in (
        ("disable", "disable an account (its sessions end)"),
        ("enable", "re-enable a disabled account"),
        ("delete", "delete an account"),
    ):
        usub.add_parser(action, parents=[common], help=text).add_argument("name")


def dispatch(args: argparse.Namespace) -> int | None:
    """Run the command if it is one of ours; None otherwise."""
    command = getattr(args, "command", None)
    if command not in COMMANDS:
        return None
    try:
        data_dir: Path = args.data_dir
        if not data_dir.is_dir():
            raise Refused(f"data dir {data_dir} does not exist (wrong --data-dir?)")
        if command == "events":
            return asyncio.run(_events(args))
        if command == "tablets":
            return asyncio.run(_tablets(args))
        return asyncio.run(_users(args))
    except Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (StorageError, DoorError, sqlite3.Error, OSError) as exc:
        print(f"{command} failed: {exc}", file=sys.stderr)
        return EXIT_FAILED


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name (container without a passwd entry)
        return f"cli:uid-{os.getuid()}"


@asynccontextmanager
async def _edge_store(data_dir: Path) -> AsyncIterator[Store]:
    path = data_dir / EDGE_DB
    if not path.is_file():
        raise Refused(f"{path} does not exist: has the daemon run on this data dir?")
    store = Store(path)
    try:
        await store.open()
        await store.call(_prepare)
        yield store
    finally:
        await store.close()


def _prepare(conn: sqlite3.Connection) -> None:
    # Wait for the daemon's writes rather than fail; the API tables may not
    # exist yet if the daemon never served the API (the same migration it runs).
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    migrate(conn, "api", db.API_MIGRATIONS)


# -- events ---------------------------------------------------------------------------
async def _events(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise Refused("--limit: must be at least 1")
    rows: list[dict[str, Any]] = []
    if not args.commands:
        rows += await asyncio.to_thread(_door_events, args.data_dir, args.limit)
    if not args.door:
        async with _edge_store(args.data_dir) as store:
            for r in await store.commands(limit=args.limit):
                rows.append({"source": "command", "time": r["ts"], **_command_row(r)})
    rows.sort(key=lambda r: datetime.fromisoformat(r["time"]), reverse=True)
    rows = rows[: args.limit]
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return EXIT_OK
    for r in rows:
        if r["source"] == "door":
            who = r["member_id"] or r["actor"] or "-"
            print(f"{r['time']}  door     {r['decision']:<8} {r['method']:<6} {who}  {r['reason']}")
        else:
            took = "" if r["duration_ms"] is None else f" ({r['duration_ms']:.0f} ms)"
            command = json.dumps(r["command"], separators=(",", ":"))
            print(
                f"{r['time']}  command  {r['result']:<8} {r['actor']}  {r['device']}  "
                f"{command}{took}"
            )
    if not rows:
        print("no events", file=sys.stderr)
    return EXIT_OK


def _door_events(data_dir: Path, limit: int) -> list[dict[str, Any]]:
    path = data_dir / DOOR_DB
    if not path.is_file():
        return []  # a site without a door
    store = DoorStore(path)  # WAL, busy timeout 30 s, synchronous=FULL
    try:
        events = store.events(limit)
    finally:
        store.close()
    keep = ("decision", "method", "member_id", "actor", "reason", "lock_result", "security")
    return [
        {"source": "door", "time": d["time"], **{k: d[k] for k in keep}}
        for d in (e.as_dict() for e in events)
    ]


def _command_row(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "actor": f"{r['actor_kind']}:{r['actor_id']}",
        "device": r["device_id"],
        "scene": r["scene_id"],
        "command": r["command"],
        "result": r["result"],
        "detail": r["detail"],
        "duration_ms": r["duration_ms"],
    }


# -- tablets --------------------------------------------------------------------------
async def _tablets(args: argparse.Namespace) -> int:
    async with _edge_store(args.data_dir) as store:
        if args.tablets_command == "list":
            tablets = await store.call(db.list_tablets)
            if args.json:
                print(json.dumps(tablets, indent=2))
            for t in [] if args.json else tablets:
                state = f"revoked {t['revoked_at']}" if t["revoked_at"] else "active"
                print(
                    f"{t['tablet_id']}  room {t['room_id']}  {t['name'] or '-'}  "
                    f"paired {t['created_at']} by {t['paired_by']}  {state}"
                )
            if not tablets and not args.json:
                print("no paired tablets", file=sys.stderr)
            return EXIT_OK
        tablet_id: str = args.tablet_id
        revoked = await store.call(lambda c: _revoke(c, tablet_id))
    print(f"tablet {tablet_id!r} revoked; it must be paired again to control its room")
    print("  (a running daemon may accept a token it already checked for up to 30 s more)")
    return EXIT_OK if revoked else EXIT_REFUSED


def _revoke(conn: sqlite3.Connection, tablet_id: str) -> bool:
    if db.revoke_tablet(conn, tablet_id):
        db.insert_audit(conn, cli_actor(), "tablet.revoke", tablet_id, "ok", None, None)
        return True
    db.insert_audit(conn, cli_actor(), "tablet.revoke", tablet_id, "not_found", None, None)
    known = [t for t in db.list_tablets(conn) if t["tablet_id"] == tablet_id]
    if known:
        raise Refused(f"tablet {tablet_id!r}: already revoked at {known[0]['revoked_at']}")
    raise Refused(f"tablet {tablet_id!r}: no such tablet (see `coresync-edge tablets list`)")


# -- users ----------------------------------------------------------------------------
async def _users(args: argparse.Namespace) -> int:
    action: str = args.users_command
    async with _edge_store(args.data_dir) as store:
        if action == "list":
            users = await store.call(db.list_users)
            if args.json:
                print(json.dumps(users, indent=2))
            for u in [] if args.json else users:
                state = "  DISABLED" if u["disabled"] else ""
                print(f"{u['username']:<24} {u['role']:<8} created {u['created_at']}{state}")
            return EXIT_OK
        name: str = args.name
        if action in ("add", "passwd"):
            return await _set_password(
                store, args.data_dir, name, args.role if action == "add" else None
            )
        if action == "delete":
            await store.call(lambda c: _delete(c, name))
            print(f"user {name!r} deleted; their sessions are ended")
            return EXIT_OK
        by_action: dict[str, dict[str, Any]] = {
            "role": {"role": getattr(args, "role", None)},
            "disable": {"disabled": True},
            "enable": {"disabled": False},
        }
        changes = by_action[action]
        user = await store.call(lambda c: _update(c, name, changes))
    print(f"user {user.username!r}: role {user.role}{', disabled' if user.disabled else ''}")
    return EXIT_OK


async def _set_password(store: Store, data_dir: Path, name: str, new_role: str | None) -> int:
    """``users add`` (``new_role`` given) or ``users passwd``: a generated password."""
    if new_role is not None and not re.fullmatch(USERNAME_PATTERN, name):
        raise Refused(
            f"name {name!r}: 2-32 characters, lower-case letters, digits, '.', '_' or '-'"
        )
    password = secrets.token_urlsafe(15)
    hashed = await Auth(store, ApiSettings()).hash_password(password)

    def write(conn: sqlite3.Connection) -> None:
        actor = cli_actor()
        if new_role is not None:
            created = db.insert_user(conn, name, hashed, new_role)
            result = "ok" if created else "conflict"
            db.insert_audit(conn, actor, "user.create", name, result, {"role": new_role}, None)
            if not created:
                raise Refused(f"user {name!r} already exists (use `users passwd {name}`)")
            return
        found = db.update_user(conn, name, password_hash=hashed)
        result = "ok" if found else "not_found"
        db.insert_audit(conn, actor, "user.update", name, result, {"changed": ["password"]}, None)
        if not found:
            raise Refused(f"user {name!r}: no such user (see `coresync-edge users list`)")

    await store.call(write)
    what = "created" if new_role is not None else "has a new password; old sessions ended"
    if sys.stdout.isatty():
        # Shown once, to the person at the terminal; never stored in clear.
        print(f"user {name!r} {what}; password: {password}")
    else:
        # Not a terminal (a log, a pipe): the secret goes to a file only its owner reads.
        path = data_dir / f"password-{name}"
        await asyncio.to_thread(_write_secret, path, password)
        print(f"user {name!r} {what}; the password is in {path} (mode 0600): delete it once read")
    return EXIT_OK


def _existing(conn: sqlite3.Connection, name: str) -> db.User:
    user = db.get_user(conn, name)
    if user is None:
        raise Refused(f"user {name!r}: no such user (see `coresync-edge users list`)")
    return user


def _guard_last_admin(conn: sqlite3.Connection, user: db.User, what: str) -> None:
    if user.role == "admin" and not user.disabled and db.count_admins(conn) <= 1:
        db.insert_audit(conn, cli_actor(), what, user.username, "refused", None, None)
        raise Refused(
            f"user {user.username!r} is the last enabled admin; "
            "make another admin first (`coresync-edge users add NAME --role admin`)"
        )


def _update(conn: sqlite3.Connection, name: str, changes: dict[str, Any]) -> db.User:
    user = _existing(conn, name)
    if changes.get("disabled") or changes.get("role", "admin") != "admin":
        _guard_last_admin(conn, user, "user.update")
    db.update_user(conn, name, **changes)
    db.insert_audit(
        conn, cli_actor(), "user.update", name, "ok", {"changed": sorted(changes)}, None
    )
    return _existing(conn, name)


def _delete(conn: sqlite3.Connection, name: str) -> None:
    # One write transaction: the last-admin check and the delete cannot interleave
    # with an admin change made through the API meanwhile.
    with _immediate(conn):
        user = _existing(conn, name)
        _guard_last_admin(conn, user, "user.delete")
        db.delete_user(conn, name)  # sessions go with it (ON DELETE CASCADE)
        db.insert_audit(conn, cli_actor(), "user.delete", name, "ok", None, None)


class _immediate:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on an error.  A Refused
    commits: nothing but the audit row of the refusal was written."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self.conn.execute("COMMIT" if kind is None or kind is Refused else "ROLLBACK")
