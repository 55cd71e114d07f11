"""Staff set a member's website password (from stdin, never argv) and a site's
contact facts with ``coresync-cloud website``; the served website then logs
the member in and shows the facts on its legal pages; the member's deletion
request is listed for staff to carry out."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import aiohttp

from edge.shop import Shop, SqliteDatabase
from sync import sites
from sync.schema import migrate_sync
from sync.testing import CloudProcess
from tests.conftest import free_port
from tests.site_demo import EXE, csrf_of, http_login
from tests.sync_helpers import off_loop

PASSWORD = "a-long-enough-secret"


def cli(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EXE), "website", *argv], input=stdin, capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def prepare(db_path: Path) -> None:
    db = SqliteDatabase(str(db_path))
    try:
        shop = Shop(db)
        shop.migrate()
        migrate_sync(db)
        dana = shop.create_member({"name": "Dana Member", "email": "dana@example.com",
                                   "phone": "+1 555 010 0200",
                                   "date_of_birth": "1980-02-02"})  # fmt: skip
        shop.create_product({"slug": "serum", "name": "Serum", "category": "skincare",
                             "price": "40.00"}, initial_stock=5)  # fmt: skip
        shop.create_order(dana.id, {"items": [{"product": "serum", "quantity": 1}]})
        sites.add_site(db, "queens", "CoreSync Queens", "0.0875", "America/New_York")
    finally:
        db.close()


def erased_state(db_path: Path) -> dict[str, Any]:
    db = SqliteDatabase(str(db_path))
    try:
        with db.read() as tx:
            member = tx.one("SELECT id, name, phone, date_of_birth, active FROM members")
            assert member is not None
            orders = tx.scalar("SELECT COUNT(*) FROM orders WHERE member_id = ?", (member["id"],))
            consent = tx.scalar(
                "SELECT biometric FROM member_consent WHERE member_id = ?", (member["id"],)
            )
            # Every feed row of this member, old ones included: a node reading
            # the feed from the start learns only the erased record.
            latest = [r["payload"] for r in tx.all(
                "SELECT payload FROM outbox WHERE entity = 'member' AND entity_id = ?",
                (member["id"],),
            )]  # fmt: skip
    finally:
        db.close()
    shown = {k: member[k] for k in ("name", "phone", "date_of_birth", "active")}
    return {"member": shown, "orders": orders, "consent": consent, "feed": str(latest)}


async def test_staff_set_a_password_and_site_facts_that_the_website_uses(tmp_path: Path) -> None:
    db_path = tmp_path / "cloud.db"
    await off_loop(lambda: prepare(db_path))
    db = ("--db", str(db_path))
    short = await off_loop(lambda: cli("password", "dana@example.com", *db, stdin="short\n"))
    assert short.returncode == 2 and "at least 10 characters" in short.stderr
    unknown = await off_loop(lambda: cli("password", "nobody@example.com", *db, stdin=PASSWORD))
    assert unknown.returncode == 2 and "nobody@example.com" in unknown.stderr
    done = await off_loop(lambda: cli("password", "dana@example.com", *db, stdin=PASSWORD + "\n"))
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    bad_phone = await off_loop(lambda: cli("contact", "queens", "--address", "1 Main St",
                                           "--phone", "call us", *db))  # fmt: skip
    assert bad_phone.returncode == 2 and "phone" in bad_phone.stderr
    contact = await off_loop(lambda: cli("contact", "queens", "--address",
                                         "37-10 Main Street, Queens, NY 11354",
                                         "--phone", "+1 (718) 555-0142", *db))  # fmt: skip
    assert contact.returncode == 0, contact.stderr
    proc = CloudProcess(str(db_path), free_port())
    await off_loop(proc.start)
    try:
        async with await http_login(proc.url, "dana@example.com", PASSWORD) as http:
            account = await (await http.get(proc.url + "/account")).text()
            form = {"csrf_token": csrf_of(account), "confirm_email": "dana@example.com"}
            r = await http.post(proc.url + "/account/delete", data=form)
            assert "Deletion requested on" in await r.text()
        listed = await off_loop(lambda: cli("deletions", *db))
        assert listed.returncode == 0 and "dana@example.com\tDana Member" in listed.stdout
        # Staff carry it out: the personal data goes, the orders stay.
        erased = await off_loop(lambda: cli("delete", "dana@example.com", *db))
        assert erased.returncode == 0 and "1 open request(s) done" in erased.stdout, erased
        assert (await off_loop(lambda: cli("deletions", *db))).stdout == ""
        gone = await off_loop(lambda: cli("delete", "dana@example.com", *db))
        assert gone.returncode == 2 and "dana@example.com" in gone.stderr
        async with aiohttp.ClientSession() as anon:
            form = await (await anon.get(proc.url + "/login")).text()
            fields = {"csrf_token": csrf_of(form), "email": "dana@example.com",
                      "password": PASSWORD}  # fmt: skip
            r = await anon.post(proc.url + "/login", allow_redirects=False, data=fields)
            assert r.status != 303  # no account to log in to any more
        after = await off_loop(lambda: erased_state(db_path))
        assert after["member"] == {"name": "Deleted member", "phone": "0000000",
                                   "date_of_birth": "1900-01-01", "active": 0}  # fmt: skip
        assert after["orders"] == 1 and after["consent"] == 0
        assert "Dana" not in after["feed"] and "dana@example.com" not in after["feed"]
        async with aiohttp.ClientSession() as anon:
            privacy = await (await anon.get(proc.url + "/privacy")).text()
        assert "37-10 Main Street, Queens, NY 11354" in privacy
        assert "+1 (718) 555-0142" in privacy
    finally:
        await off_loop(proc.stop)
