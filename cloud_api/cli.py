"""``coresync-cloud``: the thin cloud API.

coresync-cloud demo [--port 8600] [--data-dir DIR]
coresync-cloud serve --db postgresql://user@host/db --port 8600 [--workers N]
coresync-cloud sites add SITE_ID --name NAME --tax-rate 0.08 --timezone America/New_York
                     [--db DSN | --data-dir DIR]
coresync-cloud sites list [--db DSN | --data-dir DIR]
coresync-cloud nodes add NODE_ID --site SITE_ID [--db DSN | --data-dir DIR]
                     (the node secret is the last line of stdout)
coresync-cloud nodes list | nodes revoke NODE_ID [--db DSN | --data-dir DIR]
coresync-cloud staff add EMAIL --role ROLE [--site SITE_ID] [--name NAME] [--password-stdin]
                     [--db DSN | --data-dir DIR]   (a generated password is the last line)
coresync-cloud staff list | staff remove EMAIL [--db DSN | --data-dir DIR]
coresync-cloud feed compact [--retention-days 30] [--db DSN | --data-dir DIR]
coresync-cloud website password EMAIL | website contact SITE_ID --address A --phone P
                     [--db DSN | --data-dir DIR]   (the password is read from stdin)
"""

from __future__ import annotations

import argparse
import logging
import sys
from decimal import Decimal
from pathlib import Path

from aiohttp import web

from cloud_api.app import build_app
from cloud_api.auth import Auth
from cloud_api.demo import MEMBER_LOGIN, STAFF, seed
from cloud_api.site import cli as site_cli
from cloud_api.workers import serve_workers, worker_owner
from edge.shop import Shop, ShopConfig, open_database
from edge.shop.numbering import NumberReserve
from sync.schema import migrate_sync


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="coresync-cloud", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run on SQLite with a seeded demo catalogue")
    demo.add_argument("--port", type=int, default=8600)
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--data-dir", type=Path, default=Path("cloud-demo-data"))
    serve = sub.add_parser("serve", help="run against a database")
    serve.add_argument("--db", required=True, help="postgresql://... DSN or a SQLite path")
    serve.add_argument("--port", type=int, default=8600)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--tax-rate", type=Decimal, default=Decimal("0.08"))
    serve.add_argument("--pool-size", type=int, default=16)
    serve.add_argument("--schema", default=None, help="PostgreSQL schema (search_path)")
    serve.add_argument(
        "--workers", type=int, default=1,
        help="worker processes on one port (SO_REUSEPORT; PostgreSQL only; docs/cloud.md)",
    )  # fmt: skip
    serve.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    serve.add_argument(
        "--compact-every",
        type=float,
        default=600.0,
        help="seconds between feed compactions (0: never; docs/sync.md)",
    )
    serve.add_argument(
        "--feed-retention-days",
        type=float,
        default=30.0,
        help="compact rows this old even if a node has not pulled them",
    )
    _admin_commands(sub)
    site_cli.add_commands(sub)
    return p


def _target(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--db", help="postgresql://... DSN or a SQLite path")
    where.add_argument("--data-dir", type=Path, help="the SQLite cloud's data dir (cloud.db)")


def _admin_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sites = sub.add_parser("sites", help="the chain's sites").add_subparsers(
        dest="action", required=True
    )
    add = sites.add_parser("add", help="add a site")
    add.add_argument("site_id")
    add.add_argument("--name", required=True)
    add.add_argument("--tax-rate", required=True, help="e.g. 0.08")
    add.add_argument("--timezone", required=True, help="IANA zone, e.g. America/New_York")
    add.add_argument("--block-quota", type=int, default=20, help="number blocks per kind/year")
    _target(add)
    _target(sites.add_parser("list", help="list the sites"))
    nodes = sub.add_parser("nodes", help="edge-node credentials").add_subparsers(
        dest="action", required=True
    )
    nadd = nodes.add_parser("add", help="register a node of a site; prints its secret last")
    nadd.add_argument("node_id")
    nadd.add_argument("--site", required=True)
    _target(nadd)
    _target(nodes.add_parser("list", help="list the nodes"))
    revoke = nodes.add_parser("revoke", help="revoke a node's credential")
    revoke.add_argument("node_id")
    _target(revoke)
    staff = sub.add_parser("staff", help="the chain's staff accounts").add_subparsers(
        dest="action", required=True
    )
    sadd = staff.add_parser("add", help="add a staff account; a generated password is last")
    sadd.add_argument("email")
    sadd.add_argument("--role", required=True, choices=("staff", "manager", "admin"))
    sadd.add_argument("--site", help="bind to one site (staff and managers)")
    sadd.add_argument("--name", help="display name (default: the email's local part)")
    sadd.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from stdin instead of generating one",
    )
    _target(sadd)
    _target(staff.add_parser("list", help="list the staff accounts"))
    sremove = staff.add_parser("remove", help="disable an account and drop its tokens")
    sremove.add_argument("email")
    _target(sremove)
    feed = sub.add_parser("feed", help="the sync feed").add_subparsers(dest="action", required=True)
    compact = feed.add_parser("compact", help="remove superseded feed rows now (docs/sync.md)")
    compact.add_argument(
        "--retention-days",
        type=float,
        default=30.0,
        help="also rows this old that a node has not pulled yet",
    )
    _target(compact)


def _admin(args: argparse.Namespace) -> int:
    from cloud_api import admin_cli

    return admin_cli.run(args)


def _is_postgres(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def main(argv: list[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(raw)
    if args.command in ("sites", "nodes", "staff", "feed"):
        return _admin(args)
    if args.command == "website":
        return site_cli.run(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    workers = getattr(args, "workers", 1)
    if workers < 1 or (workers > 1 and not _is_postgres(args.db)):
        print("--workers: 1, or more on PostgreSQL (SQLite has one writer)", file=sys.stderr)
        return 2
    if args.command == "demo":
        args.data_dir.mkdir(parents=True, exist_ok=True)
        db = open_database(str(args.data_dir / "cloud.db"))
        config = ShopConfig()
    else:
        db = open_database(args.db, schema=args.schema, pool_size=args.pool_size)
        config = ShopConfig(tax_rate=args.tax_rate)
    shop, auth = Shop(db, config), Auth(db)
    shop.migrate()
    auth.migrate()
    if args.command == "serve" and workers > 1 and args.worker_index is None:
        migrate_sync(db)  # once, before the workers start
        db.close()
        return serve_workers(raw, workers)
    own = None
    if args.command == "serve" and _is_postgres(args.db):
        # Numbers from this worker's own blocks, reserved outside order transactions.
        own = open_database(args.db, schema=args.schema, pool_size=1)
        shop.numbers = NumberReserve(own, worker_owner(args.worker_index or 0))
    if args.command == "demo":
        tokens = seed(shop, auth)
        print(f"coresync-cloud demo on http://{args.host}:{args.port}/api/v1/")
        print(f"  OpenAPI: http://{args.host}:{args.port}/api/openapi.json")
        for who, token in tokens:
            print(f"  member {who}: Authorization: Bearer {token}")
        print(f"  staff login: POST /api/v1/auth/login {{'email': '{STAFF[0]}', "
              f"'password': '{STAFF[2]}'}}")  # fmt: skip
        print(f"  website: http://{args.host}:{args.port}/")
        print(f"member login: {MEMBER_LOGIN[0]} password {MEMBER_LOGIN[1]}")
        sys.stdout.flush()
    try:
        # One worker compacts the feed (the others would only wait for its lock).
        every = args.compact_every if args.command == "serve" and not args.worker_index else 0
        app = build_app(shop, auth, compact_every_s=every,
                        retention_days=getattr(args, "feed_retention_days", 30.0))  # fmt: skip
        # No access log line per request (as on the edge): requests are counted by
        # the metrics middleware, and a log line costs the loop a tenth of an order.
        web.run_app(app, host=args.host, port=args.port, print=None, reuse_port=workers > 1,
                    access_log=None)  # fmt: skip
    finally:
        db.close()
        if own is not None:
            own.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
