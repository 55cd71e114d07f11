"""``coresync-cloud sites|nodes|staff ...`` and ``feed compact``: the chain admin's commands
(audited as cli)."""

from __future__ import annotations

import argparse
import sys

from cloud_api import staff
from cloud_api.auth import Auth
from edge.shop import Shop, ShopConfig, ShopError, open_database
from edge.shop.db import Database
from edge.shop.inputs import parse
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
        message = str(exc)
        if exc.field and not message.startswith(f"{exc.field}:"):
            message = f"{exc.field}: {message}"  # name the field, as the HTTP answer does
        print(f"error: {message}", file=sys.stderr)
        return 2
    finally:
        db.close()


def _do(args: argparse.Namespace, db: Database, auth: Auth) -> int:
    if args.command == "staff":
        return _staff(args, db, auth)
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


def _staff(args: argparse.Namespace, db: Database, auth: Auth) -> int:
    if args.action == "add":
        password = None
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
            staff.check_password(password)
        body = parse(staff.StaffInput, {"email": args.email, "role": args.role, "site": args.site,
                                        "name": args.name, "password": password})  # fmt: skip
        made = staff.add_staff(auth, body, "cli")
        where = f"site {made['site']}" if made["site"] else "the whole chain"
        print(f"staff {made['email']} added: {made['role']} of {where}")
        if "password" in made:
            print("its password (shown once):")
            print(made["password"])
    elif args.action == "list":
        for s in staff.list_staff(db):
            state = "active" if s["active"] else "removed"
            print(f"{s['email']}\t{s['role']}\t{s['site'] or '-'}\t{state}\t{s['name']}")
    else:
        gone = staff.remove_staff(db, actor="cli", email=args.email)
        print(f"staff {gone['email']} removed (its tokens are revoked)")
    return 0
