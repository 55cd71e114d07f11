"""``coresync-edge enroll`` and ``coresync-edge members``: the door's consent and
enrollment from a shell, without the daemon.

Both open the door files on the data dir directly (``door.db``,
``templates.db`` and the same master key file the daemon uses) and the shop
for the member list.  They are safe while the daemon runs: every file is
SQLite in WAL mode with a busy timeout, enrollment re-checks consent in the
same transaction that writes the templates, and the daemon picks up new or
destroyed templates within ``door.template_reload_s``.

Wire into a parent parser with :func:`register` and :func:`dispatch`;
``python -m edge.door.cli`` runs them stand-alone.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sqlite3
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.config import SiteConfig, load_config
from edge.door.config import DoorConfig
from edge.door.errors import ConsentRequired, DoorError, EnrollmentRejected
from edge.errors import ConfigError
from edge.shop.errors import NotFound as ShopNotFound
from edge.shop.service import Shop

if TYPE_CHECKING:  # the vault loads numpy and OpenCV: only for the door commands
    from edge.door.vault import Vault

# The daemon may hold a write transaction for a moment; wait for it, not fail.
EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2


class Refused(Exception):
    """A command the CLI will not carry out; the message says why (exit 2)."""


def register(subparsers: Any) -> None:
    """Add ``enroll`` and ``members`` to a parent parser's subparsers."""
    enroll = subparsers.add_parser(
        "enroll", help="enroll a consented member's face from 3-5 photos (daemon not needed)"
    )
    _common(enroll)
    enroll.add_argument("--member", required=True, help="member id")
    enroll.add_argument("--photos", nargs="+", type=Path, required=True, help="3-5 photos")
    enroll.add_argument("--witness", help="staff member enrolling (default: your login)")

    members = subparsers.add_parser("members", help="door consent, PINs and templates of members")
    _common(members)
    sub = members.add_subparsers(dest="members_command", required=True, metavar="ACTION")
    sub.add_parser("list", help="members with consent state, templates and PIN")
    consent = sub.add_parser("consent", help="record consent to face access")
    consent.add_argument("member", help="member id")
    consent.add_argument("--witness", required=True, help="staff member witnessing it")
    consent.add_argument("--purpose", required=True, help="what the face data is for")
    consent.add_argument("--retention-days", type=int, help="shorter retention than the site's")
    withdraw = sub.add_parser("withdraw", help="withdraw consent; templates destroyed at once")
    withdraw.add_argument("member", help="member id")
    withdraw.add_argument("--witness", required=True, help="staff member recording it")
    withdraw.add_argument("--note", default="", help="optional note")
    export = sub.add_parser("export", help="everything stored about a member at the door, JSON")
    export.add_argument("member", help="member id")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", type=Path, required=True, help="site config (TOML)")
    parser.add_argument("--data-dir", type=Path, help="override storage.data_dir")


def dispatch(args: argparse.Namespace) -> int | None:
    """Run the command if it is one of ours; None otherwise."""
    if args.command not in ("enroll", "members"):
        return None
    try:
        cfg, door = _load(args.config)
        data_dir: Path = args.data_dir or cfg.storage.data_dir
        if not data_dir.is_dir():
            raise Refused(f"data dir {data_dir} does not exist (wrong --data-dir?)")
        if args.command == "enroll":
            _check_photos(door, args.photos)
            return asyncio.run(_enroll(cfg, door, data_dir, args))
        return asyncio.run(_members(cfg, door, data_dir, args))
    except Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (DoorError, sqlite3.Error, OSError) as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _load(path: Path) -> tuple[SiteConfig, DoorConfig]:
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        raise Refused("; ".join(exc.problems)) from None
    if cfg.door is None:
        raise Refused(f"{path}: no [door] section: this site has no face access")
    return cfg, cfg.door


@dataclass
class DoorFiles:
    vault: Vault
    shop: Shop

    async def member_name(self, member_id: str) -> str:
        """The member's name, or Refused when the shop has no such member."""
        try:
            member = await asyncio.to_thread(self.shop.get_member, member_id)
        except ShopNotFound:
            raise Refused(f"member {member_id!r}: no such member in the shop") from None
        return member.name


@asynccontextmanager
async def _opened(cfg: SiteConfig, door: DoorConfig, data_dir: Path) -> AsyncIterator[DoorFiles]:
    from edge.door.vault import Vault  # heavy imports, only for these commands
    from edge.service import open_shop

    shop = open_shop(cfg, data_dir)
    vault = Vault(data_dir, door.master_key_file)
    try:
        await asyncio.to_thread(shop.migrate)
        await vault.open()  # its stores wait 30 s for the daemon's writes
        yield DoorFiles(vault, shop)
    finally:
        await vault.close()
        shop.db.close()


# -- enroll ---------------------------------------------------------------------------
def _check_photos(door: DoorConfig, photos: list[Path]) -> None:
    if not door.enroll_min_photos <= len(photos) <= door.enroll_max_photos:
        raise Refused(
            f"--photos: give {door.enroll_min_photos} to {door.enroll_max_photos} photos, "
            f"got {len(photos)}"
        )
    for p in photos:
        if not p.is_file():
            raise Refused(f"--photos: {p} is not a file")


async def _enroll(cfg: SiteConfig, door: DoorConfig, data_dir: Path, args: Any) -> int:
    photos: list[Path] = args.photos
    by = args.witness or f"cli:{getpass.getuser()}"
    async with _opened(cfg, door, data_dir) as files:
        name = await files.member_name(args.member)
        consent = await files.vault.active_consent(args.member)
        if consent is None:
            raise Refused(
                f"member {args.member} ({name}) has no active consent to face access; "
                f"record it first: coresync-edge members --config {args.config} "
                f"consent {args.member} --witness NAME --purpose 'door access by face'"
            )
        print(f"enrolling {name} ({args.member}) from {len(photos)} photos", flush=True)
        vectors = await _embed_each(door, photos)
        if vectors is None:
            return EXIT_FAILED
        import numpy as np

        try:
            ids = await files.vault.enroll(args.member, np.stack(vectors), by)
        except ConsentRequired as exc:  # withdrawn while the photos were analysed
            raise Refused(str(exc)) from None
        print(f"enrolled: {len(ids)} templates stored for {name} under consent #{consent.id}")
        return EXIT_OK


async def _embed_each(door: DoorConfig, photos: Sequence[Path]) -> list[Any] | None:
    """Every photo through the worker and the quality gate, each reported as it goes;
    None (after listing every problem) when any photo fails."""
    from edge.door.enroll import embeddings_from_photos
    from vision.worker import VisionWorker

    worker = VisionWorker(door.worker)
    vectors: list[Any] = []
    failed = 0
    print("starting the vision worker ...", flush=True)
    await worker.start()
    try:
        for i, path in enumerate(photos, 1):
            label = f"[{i}/{len(photos)}] {path.name}"
            try:
                one = await embeddings_from_photos(
                    worker,
                    [(path.name, await asyncio.to_thread(path.read_bytes))],
                    door.quality,
                    1,
                    1,
                )
            except EnrollmentRejected as exc:
                failed += 1
                print(f"{label}: rejected", flush=True)
                for problem in exc.problems.get(path.name, [str(exc)]):
                    print(f"    - {problem}", flush=True)
                continue
            vectors.append(one[0])
            print(f"{label}: ok", flush=True)
    finally:
        await worker.stop()
    if failed:
        print(
            f"nothing enrolled: {failed} of {len(photos)} photos failed the quality gate; "
            "retake those photos and run the command again",
            file=sys.stderr,
        )
        return None
    return vectors


# -- members --------------------------------------------------------------------------
async def _members(cfg: SiteConfig, door: DoorConfig, data_dir: Path, args: Any) -> int:
    async with _opened(cfg, door, data_dir) as files:
        action = args.members_command
        if action == "list":
            await _list(files)
        elif action == "consent":
            await _consent(files, door, args)
        elif action == "withdraw":
            await files.member_name(args.member)
            had = await files.vault.active_consent(args.member)
            gone = await files.vault.withdraw_consent(
                args.member, args.witness, args.note or "withdrawn (cli)"
            )
            note = "" if had else " (there was no active consent)"
            print(f"consent withdrawn for {args.member}{note}; {gone} face templates destroyed")
        elif action == "export":
            print(json.dumps(await _export(files, args.member), indent=2, default=str))
    return EXIT_OK


async def _list(files: DoorFiles) -> None:
    from edge.shop.directory import search_members

    members = await asyncio.to_thread(lambda: search_members(files.shop, limit=100_000))
    overview = await files.vault.overview()
    rows: list[tuple[str, ...]] = [("ID", "NAME", "TIER", "MEMBER", "CONSENT", "TEMPLATES", "PIN")]
    for m in members:
        st = overview.pop(m.id, {"consent": "none", "templates": 0, "pin": False})
        rows.append(_row(m.id, m.name, m.tier, "active" if m.active else "inactive", st))
    for member_id, st in sorted(overview.items()):  # door records of members gone from the shop
        rows.append(_row(member_id, "(not in shop)", "-", "-", st))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _row(mid: str, name: str, tier: str, active: str, st: dict[str, Any]) -> tuple[str, ...]:
    since = f" since {str(st['consent_since'])[:10]}" if st.get("consent_since") else ""
    pin = "set" if st["pin"] else "-"
    return (mid, name, tier, active, f"{st['consent']}{since}", str(st["templates"]), pin)


async def _consent(files: DoorFiles, door: DoorConfig, args: Any) -> None:
    days = args.retention_days
    if days is not None and not 1 <= days <= door.retention_days:
        raise Refused(f"--retention-days: 1 to {door.retention_days} (the site's limit)")
    if not 3 <= len(args.purpose.strip()) <= 200:
        raise Refused("--purpose: 3 to 200 characters")
    if not args.witness.strip():
        raise Refused("--witness: name the staff member")
    name = await files.member_name(args.member)
    consent = await files.vault.grant_consent(
        args.member,
        door.consent_text_version,
        args.purpose.strip(),
        days or door.retention_days,
        args.witness.strip(),
    )
    print(
        f"consent #{consent.id} recorded for {name} ({args.member}): {consent.purpose!r}, "
        f"retention {consent.retention_days} days, text {consent.text_version}, "
        f"witness {consent.witness}"
    )


async def _export(files: DoorFiles, member_id: str) -> dict[str, Any]:
    member: dict[str, Any] | None = None
    try:
        record = await asyncio.to_thread(files.shop.get_member, member_id)
        member = record.to_json()
    except ShopNotFound:
        pass
    data = await files.vault.export(member_id)
    if member is None and not data["consent_history"] and not data["door_events"]:
        raise Refused(f"member {member_id!r}: nothing stored about this member")
    return {"member_id": member_id, "member": member, **data}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coresync-edge", description="door enrollment")
    register(parser.add_subparsers(dest="command", required=True))
    result = dispatch(parser.parse_args(argv))
    return EXIT_REFUSED if result is None else result


if __name__ == "__main__":
    sys.exit(main())
