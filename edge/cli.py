"""``coresync-edge`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from edge import cli_admin, cli_ops
from edge.config import SiteConfig, load_config
from edge.door import cli as door_cli
from edge.errors import ConfigError
from edge.ops.errors import OpsError
from edge.ops.logging import register_secret, setup_logging
from vision.extra import vision_problem

EXAMPLES = """\
examples:
  coresync-edge demo                         run the built-in demo site (no hardware)
  coresync-edge demo --data-dir /tmp/spa     ... keeping its database in /tmp/spa
  coresync-edge validate-config config/site.example.toml
  coresync-edge run --config /etc/coresync/site.toml
  coresync-edge sync --config /etc/coresync/site.toml --once
  coresync-edge backup --data-dir /var/lib/coresync-edge --dest /var/backups/coresync
  coresync-edge doctor --config /etc/coresync/site.toml
  coresync-edge members --config site.toml consent M-1 --witness ana --purpose "door access"
  coresync-edge enroll --config site.toml --member M-1 --photos a.jpg b.jpg c.jpg
  coresync-edge users add ana --role manager   (also: events, tablets list|revoke)
"""


# `run` exits with this when a component exceeded its restart budget or the
# daemon could not start (systemd's Restart=on-failure restarts it).
EXIT_FAILED = 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="coresync-edge",
        description="CoreSync Edge: the spa controller daemon.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    p.add_argument(
        "--log-format",
        choices=("kv", "json"),
        default="kv",
        help="key=value lines (default) or JSON lines; journald-aware either way",
    )
    p.add_argument(
        "--validate-config",
        type=Path,
        metavar="FILE",
        help="same as the validate-config command",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon on a site config")
    run.add_argument("--config", "-c", type=Path, required=True, help="site config (TOML)")
    run.add_argument("--data-dir", type=Path, help="override storage.data_dir")

    demo = sub.add_parser("demo", help="run the built-in demo site with simulated devices")
    demo.add_argument("--data-dir", type=Path, help="where the demo keeps its database")
    demo.add_argument("--http-port", type=int, default=8080, help="LAN API port (default 8080)")
    demo.add_argument(
        "--broker",
        metavar="HOST:PORT",
        help=(
            "MQTT broker to use, or 'embedded' (default: 127.0.0.1:1883 if it answers, "
            "else an embedded one)"
        ),
    )

    val = sub.add_parser("validate-config", help="check a site config; exit 2 naming each problem")
    val.add_argument("file", type=Path)

    sync = sub.add_parser("sync", help="sync orders and requests with the cloud now")
    sync.add_argument("--config", "-c", type=Path, required=True, help="site config (TOML)")
    sync.add_argument("--data-dir", type=Path, help="override storage.data_dir")
    sync.add_argument("--once", action="store_true", help="one full cycle, then exit (cron)")
    sync.add_argument("--status", action="store_true", help="print the sync status and exit")
    cli_ops.register(sub)
    door_cli.register(sub)
    cli_admin.register(sub)
    return p


def _load_or_report(path: Path, *, summary: bool = False) -> SiteConfig | None:
    """The config, or None after printing each problem (file:line: key path: why)."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        if summary:
            print(f"{path}: {len(exc.problems)} problem(s)", file=sys.stderr)
        return None


def validate_config(path: Path) -> int:
    cfg = _load_or_report(path, summary=True)
    if cfg is None:
        return 2
    from edge.safety.checks import heater_warnings

    for warning in heater_warnings(cfg, path.read_text(encoding="utf-8"), str(path)):
        print(warning, file=sys.stderr)
    devices = sum(len(r.devices) for r in cfg.rooms)
    print(f"{path}: valid (site {cfg.site.id}, {len(cfg.rooms)} rooms, {devices} devices)")
    return 0


def _cancel(main: asyncio.Future[None] | asyncio.Task[None], sig: signal.Signals) -> None:
    logging.getLogger(__name__).info("%s received: stopping", sig.name)
    main.cancel()


async def _run_until_signal(main: asyncio.Future[None] | asyncio.Task[None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, _cancel, main, sig)
    with contextlib.suppress(asyncio.CancelledError):
        await main


async def _run(config_path: Path, data_dir: Path | None) -> int:
    from edge.sdnotify import Notifier, watchdog_interval, watchdog_loop
    from edge.service import EdgeService

    cfg = _load_or_report(config_path)
    if cfg is None:
        return 2
    if cfg.door is not None and (problem := vision_problem()) is not None:
        # Before anything starts: a door that could never verify a face is an
        # installation error, said in one line naming what to install.
        logging.getLogger(__name__).error("cannot start: [door] is configured but %s", problem)
        return EXIT_FAILED
    if cfg.mqtt is not None:
        # Never in a log line, whatever a library prints about its connection.
        register_secret(cfg.mqtt.resolve_password())
    service = EdgeService(cfg, data_dir=data_dir)
    notifier = Notifier()
    interval = watchdog_interval()
    log = logging.getLogger(__name__)
    # Why the process ends: None for a signal (exit 0), else the reason (exit 1).
    failure: list[str] = []

    async def body() -> None:
        watchdog: asyncio.Task[None] | None = None
        try:
            try:
                await service.start()
            except OpsError:
                raise  # one clear line from _run, no traceback
            except Exception as exc:
                failure.append(f"could not start: {exc}")
                log.exception("edge service could not start")
                return
            # Everything built so far (modules, config, routes, devices) lives
            # as long as the process: out of the collector's sight, so the
            # periodic full collections walk only what requests and polls
            # allocate (CPython's gc docs; Instagram's reason for it).
            gc.collect()
            gc.freeze()
            if interval is not None:
                # Outside the supervisor on purpose: it must not be restarted
                # into pinging, and it looks only at the loop and the safety part.
                watchdog = asyncio.create_task(
                    watchdog_loop(notifier, interval, service.monitor.alive), name="watchdog"
                )
            notifier.ready(f"site {cfg.site.id}: {len(cfg.rooms)} rooms")
            reason = await service.wait()
            failure.append(reason)
            log.critical("exiting non-zero so systemd restarts the daemon: %s", reason)
        finally:
            if watchdog is not None:
                watchdog.cancel()
            notifier.stopping()
            await service.stop()

    try:
        await _run_until_signal(asyncio.create_task(body(), name="edge-main"))
    except OpsError as exc:
        # A busy data dir or an unusable data file: one line, no traceback.
        logging.getLogger(__name__).error("cannot start: %s", exc)
        return EXIT_FAILED
    if failure:
        print(f"coresync-edge: {failure[0]}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.validate_config is not None:
        return validate_config(args.validate_config)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "validate-config":
        return validate_config(args.file)
    setup_logging(args.log_level, args.log_format)
    for noisy in ("amqtt", "pymodbus", "transitions"):
        # Third-party chatter at INFO is noise for an operator.
        logging.getLogger(noisy).setLevel(logging.WARNING)
    code = cli_ops.dispatch(args)
    if code is None:
        code = door_cli.dispatch(args)
    if code is None:
        code = cli_admin.dispatch(args)
    if code is not None:
        return code
    if args.command == "run":
        return asyncio.run(_run(args.config, args.data_dir))
    if args.command == "sync":
        return _sync(args.config, args.data_dir, once=args.once, status=args.status)
    if args.command == "demo":
        from edge.demo.runner import run_demo

        return asyncio.run(
            _run_demo_with_signals(run_demo(args.data_dir, args.http_port, args.broker))
        )
    return 2


def _sync(config_path: Path, data_dir: Path | None, *, once: bool, status: bool) -> int:
    import json

    from edge.service import open_shop
    from sync import SyncError, sync_once, sync_status

    cfg = _load_or_report(config_path)
    if cfg is None:
        return 2
    if cfg.cloud is None:
        print(f"{config_path}: no [cloud] section: this site does not sync", file=sys.stderr)
        return 2
    data = data_dir or cfg.storage.data_dir
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    shop = open_shop(cfg, data)
    try:
        shop.migrate()
        if status:
            print(json.dumps(sync_status(shop), indent=2, default=str))
            return 0
        if not once:
            print("use --once for one cycle (the daemon runs sync continuously)", file=sys.stderr)
            return 2
        try:
            report = asyncio.run(sync_once(shop, cfg.cloud))
        except SyncError as exc:
            print(f"sync failed: {exc}", file=sys.stderr)
            return 1
        print(report)
        return 0
    finally:
        shop.db.close()


async def _run_demo_with_signals(coro: asyncio.Future[int] | object) -> int:
    task: asyncio.Task[None] = asyncio.create_task(coro, name="edge-demo")  # type: ignore[arg-type]
    await _run_until_signal(task)
    return 0


if __name__ == "__main__":
    sys.exit(main())
