"""``coresync-edge backup | restore | doctor``: operations subcommands.

``edge.cli`` calls :func:`register` with its subparsers and, after parsing,
:func:`dispatch`, which returns an exit code for these commands and None for
any other.  Exit codes: 0 fine, 1 a check failed / the operation failed,
2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from edge.ops.errors import BackupKeyError, DataDirBusy, OpsError
from edge.ops.layout import BACKUP_KEY_CREDENTIAL as KEY_CREDENTIAL

DEFAULT_DATA_DIR = Path("/var/lib/coresync-edge")
DEFAULT_BACKUP_DIR = Path("/var/backups/coresync-edge")
COMMANDS = ("backup", "restore", "doctor")


def register(subparsers: Any) -> None:
    """Add the operations commands to ``coresync-edge``'s subparsers."""
    b = subparsers.add_parser("backup", help="online backup of the databases (daemon may run)")
    b.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="daemon data dir")
    b.add_argument("--dest", type=Path, default=DEFAULT_BACKUP_DIR, help="where backups go")
    b.add_argument("--keep", type=int, default=7, help="newest backups to keep (default 7)")
    b.add_argument(
        "--include-key",
        action="store_true",
        help="accepted for old scripts; copies nothing (face templates are not in backups)",
    )
    b.add_argument("--key-file", type=Path, help="template master key, if not the default")
    b.add_argument(
        "--backup-key",
        type=Path,
        help=f"file holding the backup key (default: the credential {KEY_CREDENTIAL!r})",
    )
    b.add_argument("--quiet", "-q", action="store_true", help="no progress output")

    r = subparsers.add_parser("restore", help="restore a backup (daemon must be stopped)")
    r.add_argument("backup", type=Path, help="a backup directory made by `backup`")
    r.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="daemon data dir")
    r.add_argument("--key-file", type=Path, help="where to install a key the backup carries")
    r.add_argument(
        "--backup-key",
        type=Path,
        help="file holding the backup key; without it, the credential or a prompt",
    )
    r.add_argument("--force", action="store_true", help="restore even if the data dir looks in use")

    d = subparsers.add_parser("doctor", help="check broker, buses, disk, clock and permissions")
    d.add_argument("--config", "-c", type=Path, required=True, help="site config (TOML)")
    d.add_argument("--data-dir", type=Path, help="override storage.data_dir")
    d.add_argument("--timeout", type=float, default=3.0, help="per network check, seconds")
    d.add_argument(
        "--credentials-dir",
        type=Path,
        help="read systemd credentials from DIR, e.g. /etc/coresync/credentials",
    )


def dispatch(args: argparse.Namespace) -> int | None:
    """Run the command if it is one of ours; None otherwise."""
    command = getattr(args, "command", None)
    if command not in COMMANDS:
        return None
    try:
        if command == "backup":
            return _backup(args)
        if command == "restore":
            return _restore(args)
        return _doctor(args)
    except DataDirBusy as exc:
        print(f"refused: {exc}; stop it first (systemctl stop coresync-edge)", file=sys.stderr)
        return 1
    except OpsError as exc:
        print(f"{command} failed: {exc}", file=sys.stderr)
        return 1


class _ProgressPrinter:
    """One line per file, rewritten at most twice a second on a terminal."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.last = 0.0
        self.tty = sys.stderr.isatty()

    def __call__(self, name: str, done: int, total: int) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        finished = done >= total
        if not finished and now - self.last < 0.5:
            return
        self.last = now
        pct = 100.0 * done / total if total else 100.0
        end = "\n" if finished or not self.tty else "\r"
        print(f"  {name}: {done}/{total} pages ({pct:.0f} %)", end=end, file=sys.stderr)


def _backup_secret(path: Path | None, *, prompt: bool) -> str:
    """The backup key: --backup-key FILE, else the systemd credential, else
    (restore on a terminal) typed at a prompt that does not echo."""
    from edge.ops import backup_crypto as bc

    path = path or bc.default_key_path()
    if path is not None:
        return bc.read_secret(path)
    if prompt and sys.stdin.isatty():
        import getpass

        try:
            typed = getpass.getpass("backup key: ")
        except (EOFError, KeyboardInterrupt):
            raise BackupKeyError("no backup key typed") from None
        return bc.check_secret(typed.strip(), "(typed)")
    raise BackupKeyError(
        f"no backup key: give --backup-key FILE or load the credential {KEY_CREDENTIAL!r} "
        "(docs/operations.md, Backup key)"
    )


def _backup(args: argparse.Namespace) -> int:
    from edge.ops.backup import backup

    if args.keep < 1:
        print("--keep: must be at least 1", file=sys.stderr)
        return 2
    result = backup(
        args.data_dir,
        args.dest,
        secret=_backup_secret(args.backup_key, prompt=False),
        keep=args.keep,
        include_key=args.include_key,
        key_file=args.key_file,
        progress=_ProgressPrinter(args.quiet),
    )
    total = sum(result.files.values())
    print(
        f"backup written: {result.path} ({len(result.files)} databases, {total:,} bytes, encrypted)"
    )
    for old in result.removed:
        print(f"  rotated away: {old}")
    print("  face templates left out: members re-enroll after a restore")
    if args.include_key:
        print("  --include-key: nothing copied (no templates in the backup need the key)")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from edge.ops.restore import is_encrypted, read_manifest, restore

    encrypted = is_encrypted(read_manifest(args.backup))
    result = restore(
        args.backup,
        args.data_dir,
        secret=_backup_secret(args.backup_key, prompt=True) if encrypted else None,
        force=args.force,
        key_file=args.key_file,
    )
    print(f"restored {', '.join(result.restored)} into {args.data_dir}")
    if result.moved_aside is not None:
        print(f"  previous files moved to {result.moved_aside}")
    if result.key_installed is not None:
        print(f"  template master key installed at {result.key_installed} (0600)")
    if result.key_note:
        print(f"  note: {result.key_note}")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from edge.ops.doctor import exit_code, run_checks

    if args.credentials_dir is not None:
        os.environ["CREDENTIALS_DIRECTORY"] = str(args.credentials_dir)
    checks = asyncio.run(run_checks(args.config, data_dir=args.data_dir, timeout=args.timeout))
    for check in checks:
        print(check.line())
    failed = sum(c.status == "FAIL" for c in checks)
    warned = sum(c.status == "WARN" for c in checks)
    print(f"{len(checks)} checks: {failed} failed, {warned} warnings")
    return exit_code(checks)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m edge.cli_ops``) until edge.cli wires these in."""
    parser = argparse.ArgumentParser(prog="coresync-edge")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    code = dispatch(parser.parse_args(argv))
    return 2 if code is None else code


if __name__ == "__main__":
    sys.exit(main())
