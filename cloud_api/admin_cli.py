"""``coresync-cloud sites ...``, ``nodes ...`` and ``feed compact``: the chain admin's commands
(audited as cli)."""

from __future__ import annotations

import argparse
import sys

from cloud_api.auth import Auth
from edge.shop import Shop, ShopConfig, ShopError, open_database
from edge.shop.db import Database
from sync import sites
from sync.schema import migrate_sync


def run(args: argparse.Namespace) -> int:
    if args.db is None and args.data_dir is None:
        print("give --db DSN or --data-dir DIR", file=sys.stderr)
        return 2
    if args.db is not None:
        target = args.db
    else:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        target = str(args.data_dir / "cloud.db")
    db = open_database(target)
    try:
        Shop(db, ShopConfig()).migrate()
        auth = Auth(db)
        auth.migrate()
        migrate_sync(db)
        return _do(args, db, auth)
    except ShopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        db.close()


def _do(args: argparse.Namespace, db: Database, auth: Auth) -> int:
    if args.command == "feed":
        from sync.cloud import CloudSync
        from sync.compact import compact

        r = compact(CloudSync(Shop(db, ShopConfig())), retention_days=args.retention_days)
        print(f"feed compacted: {r.rows_before} rows before, {r.rows_after} after"
              f" ({r.removed} removed, {r.rewritten} rewritten to the current record)")  # fmt: skip
    elif args.command == "sites" and args.action == "add":
        s = sites.add_site(db, args.site_id, args.name, args.tax_rate, args.timezone,
                           block_quota=args.block_quota)  # fmt: skip
        print(f"site {s.id} added: {s.name}, tax {s.tax_rate}, {s.timezone}")
    elif args.command == "sites":
        for s in sites.list_sites(db):
            print(f"{s.id}\t{s.name}\t{s.tax_rate}\t{s.timezone}\tquota {s.block_quota}")
    elif args.action == "add":
        secret = auth.register_node(args.node_id, args.site)
        print(f"node {args.node_id} registered for site {args.site}; its secret (shown once):")
        print(secret)
    elif args.action == "list":
        for n in sites.list_nodes(db):
            state = "active" if n["active"] else "revoked"
            print(f"{n['node_id']}\t{n['site'] or '-'}\t{state}\t{n['created_at']}")
    else:
        sites.revoke_node(db, args.node_id)
        print(f"node {args.node_id} revoked (takes effect within 5 minutes)")
    return 0
