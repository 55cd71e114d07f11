"""Staff of a site can be created (CLI and HTTP, by the chain admin, audited); a site's
staff do their site's work, reach nothing of another site, and see and resolve their
own site's attention items (oversells, quarantined changes of its nodes).
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from cloud_api.auth import Auth, Unauthenticated
from edge.shop import Shop
from sync.attention import raise_attention
from tests.sync_helpers import make_edge, off_loop
from tests.test_cloud_sites import BIN, _sync, chain, http, make_shop_at

__all__ = ["chain", "http"]


def _cli(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "coresync-cloud"), *argv], capture_output=True, text=True,
                          timeout=60, input=stdin)  # fmt: skip


def test_cli_adds_lists_and_removes_staff_of_a_site(tmp_path: Path) -> None:
    where = ["--data-dir", str(tmp_path / "cloud")]
    assert _cli("sites", "add", "soho", "--name", "SoHo", "--tax-rate", "0.08",
                "--timezone", "America/New_York", *where).returncode == 0  # fmt: skip
    added = _cli("staff", "add", "Desk@Soho.example", "--role", "staff", "--site", "soho", *where)
    assert added.returncode == 0, added.stderr
    password = added.stdout.strip().splitlines()[-1]  # generated: the last line, once
    assert len(password) >= 20 and "soho" in added.stdout.splitlines()[0]
    boss = _cli("staff", "add", "boss@example.com", "--role", "admin", "--password-stdin",
                *where, stdin="a-long-passphrase\n")  # fmt: skip
    assert boss.returncode == 0, boss.stderr
    assert "a-long-passphrase" not in boss.stdout + boss.stderr  # given: never echoed
    db_path = tmp_path / "cloud" / "cloud.db"
    with make_shop_at(db_path) as shop:
        _, role, _ = Auth(shop.db).login("desk@soho.example", password)
        assert role == "staff"
        token, _, _ = Auth(shop.db).login("boss@example.com", "a-long-passphrase")
        assert Auth(shop.db).authenticate(token).site is None
    listed = _cli("staff", "list", *where).stdout
    assert "desk@soho.example\tstaff\tsoho\tactive" in listed, listed
    assert "boss@example.com\tadmin\t-\tactive" in listed
    for argv, field in (
        (("x@example.com", "--role", "admin", "--site", "soho"), "site"),  # an admin is chain's
        (("y@example.com", "--role", "staff", "--site", "nowhere"), "site"),
        (("not-an-email", "--role", "staff"), "email"),
        (("desk@soho.example", "--role", "staff"), "email"),  # exists
    ):
        bad = _cli("staff", "add", *argv, *where)
        assert bad.returncode == 2 and field in bad.stderr, (argv, bad.stderr)
    short = _cli("staff", "add", "z@example.com", "--role", "staff", "--password-stdin", *where,
                 stdin="short\n")  # fmt: skip
    assert short.returncode == 2 and "password" in short.stderr
    assert _cli("staff", "add", "q@example.com", "--role", "owner", *where).returncode == 2
    removed = _cli("staff", "remove", "desk@soho.example", *where)
    assert removed.returncode == 0, removed.stderr
    with make_shop_at(db_path) as shop, pytest.raises(Unauthenticated):
        Auth(shop.db).login("desk@soho.example", password)
    assert "desk@soho.example\tstaff\tsoho\tremoved" in _cli("staff", "list", *where).stdout
    last = _cli("staff", "remove", "boss@example.com", *where)
    assert last.returncode == 2 and "last admin" in last.stderr
    again = _cli("staff", "add", "desk@soho.example", "--role", "manager", "--site", "soho", *where)
    assert again.returncode == 0, again.stderr  # a removed account's email is taken over
    with make_shop_at(db_path) as shop, shop.db.read() as tx:
        rows = tx.all("SELECT * FROM admin_audit WHERE action IN ('staff.add', 'staff.remove')")
        audit = [(r["action"], r["target"], r["actor"]) for r in rows]
    assert audit == [("staff.add", "desk@soho.example", "cli"),
                     ("staff.add", "boss@example.com", "cli"),
                     ("staff.remove", "desk@soho.example", "cli"),
                     ("staff.add", "desk@soho.example", "cli")]  # fmt: skip


async def _login(http: TestClient[Any, Any], email: str, password: str) -> dict[str, str]:
    r = await http.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert r.status == 200, await r.text()
    return {"Authorization": f"Bearer {(await r.json())['token']}"}


async def _add(http: TestClient[Any, Any], admin: dict[str, str], **body: Any) -> Any:
    r = await http.post("/api/v1/staff", json=body, headers=admin)
    assert r.status == 201, await r.text()
    return await r.json()


def _orders(shop: Shop, members: dict[str, str]) -> tuple[str, str]:
    soho = shop.create_order(members["ben"], {"items": [{"product": "serum", "quantity": 1}],
                                              "site": "soho"})  # fmt: skip
    paris = shop.create_order(members["ava"], {"items": [{"product": "serum", "quantity": 1}],
                                               "site": "paris"})  # fmt: skip
    return soho.id, paris.id


async def test_staff_made_over_http_work_their_site_only(
    chain: dict[str, Any], http: TestClient[Any, Any]
) -> None:
    cloud = chain["cloud"]
    admin = await _login(http, "chief@example.com", "pw-123456")
    desk = await _login(http, "desk@example.com", "pw-123456")
    mgr = await _login(http, "soho-mgr@example.com", "pw-123456")
    lea = {"email": "lea@soho.example", "role": "staff", "site": "soho"}
    for who in (desk, mgr):  # the chain admin's only
        assert (await http.post("/api/v1/staff", json=lea, headers=who)).status == 403
        assert (await http.get("/api/v1/staff", headers=who)).status == 403
    for bad, field in (
        ({**lea, "role": "owner"}, "role"),
        ({**lea, "site": "nowhere"}, "site"),
        ({**lea, "site": "Not An Id"}, "site"),
        ({**lea, "email": "lea"}, "email"),
        ({**lea, "role": "admin"}, "site"),
        ({**lea, "password": "short"}, "password"),
        ({**lea, "password": 1234567890123}, "password"),
        ({**lea, "superuser": True}, "superuser"),
    ):
        r = await http.post("/api/v1/staff", json=bad, headers=admin)
        assert r.status == 422 and (await r.json())["error"]["field"] == field, (bad, r.status)
    made = await _add(http, admin, **lea)
    assert made["site"] == "soho" and made["role"] == "staff" and len(made["password"]) >= 20
    r = await http.post("/api/v1/staff", json=lea, headers=admin)
    assert r.status == 409 and (await r.json())["error"]["field"] == "email"
    listed = (await (await http.get("/api/v1/staff", headers=admin)).json())["staff"]
    assert {"email": "lea@soho.example", "site": "soho", "active": True}.items() <= next(
        s for s in listed if s["email"] == "lea@soho.example"
    ).items()
    assert not any("password" in s or "password_hash" in s for s in listed)
    me = await _login(http, "lea@soho.example", made["password"])
    soho_order, paris_order = await off_loop(lambda: _orders(cloud.shop, cloud.members))
    # Their site's work: stock, orders.
    r = await http.post("/api/v1/shop/products/serum/restock", json={"quantity": 2}, headers=me)
    assert r.status == 200 and (await r.json())["stock"] == 6, await r.text()  # 5 - 1 + 2
    r = await http.post(f"/api/v1/shop/orders/{soho_order}/status",
                        json={"status": "processing"}, headers=me)  # fmt: skip
    assert r.status == 200, await r.text()
    seen = (await (await http.get("/api/v1/shop/orders", headers=me)).json())["items"]
    assert [o["id"] for o in seen] == [soho_order]
    # Another site's: absent or refused, and unchanged.
    assert (await http.get(f"/api/v1/shop/orders/{paris_order}", headers=me)).status == 404
    r = await http.post(f"/api/v1/shop/orders/{paris_order}/status",
                        json={"status": "processing"}, headers=me)  # fmt: skip
    assert r.status == 404
    r = await http.post("/api/v1/shop/products/serum/restock",
                        json={"quantity": 2, "site": "paris"}, headers=me)  # fmt: skip
    assert r.status == 403
    assert (await asyncio.to_thread(cloud.shop.get_order, paris_order)).status == "pending"
    assert (await asyncio.to_thread(cloud.shop.get_product, "serum", site="paris")).stock == 4
    # Removed: refused at the next request; the removal is audited.
    r = await http.post(f"/api/v1/staff/{made['id']}/remove", json={}, headers=admin)
    assert r.status == 200 and (await r.json())["active"] is False
    assert (await http.get("/api/v1/shop/orders", headers=me)).status == 401
    r = await http.post(f"/api/v1/staff/{made['id']}/remove", json={}, headers=admin)
    assert r.status == 404
    spec = await (await http.get("/api/openapi.json")).json()
    assert {"/api/v1/staff", "/api/v1/staff/{id}/remove"} <= set(spec["paths"])

    def audit() -> list[tuple[str, str, str]]:
        with cloud.shop.db.read() as tx:
            rows = tx.all("SELECT actor, action, target FROM admin_audit"
                          " WHERE action IN ('staff.add', 'staff.remove') ORDER BY id")  # fmt: skip
        return [(r["action"], r["target"], r["actor"][:6]) for r in rows]

    assert await off_loop(audit) == [("staff.add", "lea@soho.example", "staff:"),
                                     ("staff.remove", "lea@soho.example", "staff:")]  # fmt: skip


def _oversell_at(shop: Shop, members: dict[str, str], site: str, who: str) -> None:
    """Online, the site sells 1 of its 5 serums while its edge sold all 5 at the counter."""
    shop.create_order(members[who], {"items": [{"product": "serum", "quantity": 1}],
                                     "site": site})  # fmt: skip


def _chain_item(shop: Shop) -> None:
    with shop.db.write() as tx:
        raise_attention(tx, "rejected_change", "product", "p-1", "cloud", "CHAIN-WIDE", {})


async def test_a_sites_staff_see_and_resolve_their_sites_attention_items(
    chain: dict[str, Any], http: TestClient[Any, Any]
) -> None:
    cloud, tmp, secrets = chain["cloud"], chain["tmp"], chain["secrets"]
    admin = await _login(http, "chief@example.com", "pw-123456")
    staff = {}
    for site in ("soho", "paris"):
        made = await _add(http, admin, email=f"desk@{site}.example", role="staff", site=site)
        staff[site] = await _login(http, f"desk@{site}.example", made["password"])
    member = {"soho": "ben", "paris": "ava"}
    for site in ("soho", "paris"):  # a real oversell through each site's node
        name = f"{site}-1"
        edge = await off_loop(lambda n=name: make_edge(tmp / f"{n}.db", n))  # type: ignore[misc]
        try:
            await _sync(edge, http, name, secrets[name])
            items = {"items": [{"product": "serum", "quantity": 5}]}
            await asyncio.to_thread(edge.create_order, cloud.members[member[site]], items)
            await off_loop(lambda s=site: _oversell_at(cloud.shop, cloud.members, s,  # type: ignore[misc]
                                                       member[s]))  # fmt: skip
            await _sync(edge, http, name, secrets[name])
        finally:
            await off_loop(lambda e=edge: e.db.close())  # type: ignore[misc]
    # A change the paris node pushed that cannot apply: quarantined, paris's item.
    bad = {"changes": [{"key": "paris-1:900", "entity": "bogus", "entity_id": "x", "op": "create",
                        "payload": {}, "created_at": "2026-01-01T00:00:00+00:00"}]}  # fmt: skip
    r = await http.post("/api/v1/sync/push", json=bad,
                        headers={"Authorization": f"Node paris-1:{secrets['paris-1']}"})
    assert (await r.json())["acks"][0]["status"] == "rejected"
    await off_loop(lambda: _chain_item(cloud.shop))

    async def items(who: dict[str, str]) -> list[dict[str, Any]]:
        r = await http.get("/api/v1/sync/attention", headers=who)
        assert r.status == 200, await r.text()
        return list((await r.json())["items"])

    everything = await items(admin)
    by_site = {s: [i for i in everything if i["site"] == s] for s in ("soho", "paris", None)}
    assert [i["kind"] for i in by_site["soho"]] == ["oversell"]
    assert sorted(i["kind"] for i in by_site["paris"]) == ["oversell", "rejected_change"]
    assert [i["detail"] for i in by_site[None]] == ["CHAIN-WIDE"]
    for site, other in (("soho", "paris"), ("paris", "soho")):
        mine = await items(staff[site])
        assert [i["id"] for i in mine] == [i["id"] for i in by_site[site]], site
        assert "short by 1" in next(i for i in mine if i["kind"] == "oversell")["detail"]
        for foreign in (*by_site[other], *by_site[None]):  # absent, and left open
            url = f"/api/v1/sync/attention/{foreign['id']}/resolve"
            assert (await http.post(url, json={}, headers=staff[site])).status == 404
        for item in mine:
            r = await http.post(f"/api/v1/sync/attention/{item['id']}/resolve", json={},
                                headers=staff[site])  # fmt: skip
            assert r.status == 200 and (await r.json())["resolved_at"], await r.text()
        assert await items(staff[site]) == []
    assert [i["detail"] for i in await items(admin)] == ["CHAIN-WIDE"]
