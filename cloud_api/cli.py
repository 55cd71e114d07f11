"""``coresync-cloud``: the thin cloud API.

coresync-cloud demo [--port 8600] [--data-dir DIR]
coresync-cloud serve --db postgresql://user@host/db --port 8600
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
from cloud_api.demo import STAFF, seed
from edge.shop import Shop, ShopConfig, open_database


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
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.command == "demo":
        args.data_dir.mkdir(parents=True, exist_ok=True)
        db = open_database(str(args.data_dir / "cloud.db"))
        config = ShopConfig()
    else:
        db = open_database(args.db, pool_size=args.pool_size)
        config = ShopConfig(tax_rate=args.tax_rate)
    shop, auth = Shop(db, config), Auth(db)
    shop.migrate()
    auth.migrate()
    if args.command == "demo":
        tokens = seed(shop, auth)
        print(f"coresync-cloud demo on http://{args.host}:{args.port}/api/v1/")
        print(f"  OpenAPI: http://{args.host}:{args.port}/api/openapi.json")
        for who, token in tokens:
            print(f"  member {who}: Authorization: Bearer {token}")
        print(f"  staff login: POST /api/v1/auth/login {{'email': '{STAFF[0]}', "
              f"'password': '{STAFF[2]}'}}")  # fmt: skip
        sys.stdout.flush()
    try:
        web.run_app(build_app(shop, auth), host=args.host, port=args.port, print=None)
    finally:
        db.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
