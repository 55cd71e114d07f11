"""``coresync-cloud website ...``: staff set a member's website password and
a site's contact facts (shown on the legal pages).  Both are audited.

coresync-cloud website password EMAIL [--db DSN | --data-dir DIR]   (password on stdin)
coresync-cloud website contact SITE_ID --address TEXT --phone TEXT [--db DSN | --data-dir DIR]
coresync-cloud website deletions [--db DSN | --data-dir DIR]   (requests to carry out)
coresync-cloud website delete EMAIL [--db DSN | --data-dir DIR]  (carry one out)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cloud_api.site import store
from cloud_api.site.web import password_hasher
from edge.shop import Shop, ShopConfig, ShopError, open_database
from edge.shop.inputs import Input, Phone, parse
from sync import sites
from sync.cloud import CloudSync
from sync.schema import migrate_sync

MIN_PASSWORD = 10


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    website = sub.add_parser("website", help="the members' website").add_subparsers(
        dest="action", required=True
    )
    pw = website.add_parser("password", help="set a member's password (read from stdin)")
    pw.add_argument("email")
    contact = website.add_parser("contact", help="a site's address and phone")
    contact.add_argument("site_id")
    contact.add_argument("--address", required=True)
    contact.add_argument("--phone", required=True)
    deletions = website.add_parser("deletions", help="account deletions members asked for")
    erase = website.add_parser(
        "delete", help="carry out a member's account deletion (keeps orders the law needs)"
    )
    erase.add_argument("email")
    for p in (pw, contact, deletions, erase):
        where = p.add_mutually_exclusive_group(required=True)
        where.add_argument("--db", help="postgresql://... DSN or a SQLite path")
        where.add_argument("--data-dir", type=Path, help="the SQLite cloud's data dir")


def run(args: argparse.Namespace) -> int:
    target = args.db or str(args.data_dir / "cloud.db")
    db = open_database(target)
    try:
        shop = Shop(db, ShopConfig())
        shop.migrate()
        migrate_sync(db)
        store.migrate_site(db)
        if args.action == "password":
            member = shop.find_member_by_email(args.email)
            password = sys.stdin.readline().rstrip("\r\n")
            if len(password) < MIN_PASSWORD:
                print(f"error: the password needs at least {MIN_PASSWORD} characters "
                      "(give it on stdin)", file=sys.stderr)  # fmt: skip
                return 2
            store.set_password_hash(db, member.id, password_hasher().hash(password), actor="cli")
            print(f"website password set for {member.email}")
        elif args.action == "delete":
            member = shop.find_member_by_email(args.email)
            # Consent first: the spa's door destroys the templates on either
            # change, and withdrawal says why in its own record.
            CloudSync(shop).set_consent(member.id, False)
            shop.erase_member(member.id)
            handled = store.complete_deletion(db, member.id, actor="cli")
            print(
                f"member {member.id} erased ({handled} open request(s) done): name, email,"
                " phone and date of birth removed, website login and sessions ended, face"
                " consent withdrawn; orders and payments kept (tax and accounting law)"
            )
        elif args.action == "deletions":
            for d in store.open_deletion_requests(db):
                print(f"{d['requested_at'][:19]}\t{d['email']}\t{d['name']}\t{d['member_id']}")
        else:
            if args.site_id not in {s.id for s in sites.list_sites(db)}:
                print(f"error: unknown site {args.site_id!r}", file=sys.stderr)
                return 2
            parse(_PhoneOnly, {"phone": args.phone})
            store.set_contact(db, args.site_id, args.address.strip(), args.phone, actor="cli")
            print(f"contact of site {args.site_id} set")
        return 0
    except ShopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        db.close()


class _PhoneOnly(Input):
    phone: Phone
