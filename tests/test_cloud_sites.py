"""Sites as tenants: provisioning (CLI and HTTP, audited), the feed partitioned per
site, cross-site writes refused, a number-block quota per site.

The isolation test walks every route of the real router (not a hand list): a
node of site A gets nothing of site B through any of them, and a route the
test does not know fails it until someone says what A may see there.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cloud_api.admin_routes import ADMIN_ROUTES
from cloud_api.app import build_app
from cloud_api.auth import Auth, Unauthenticated
from cloud_api.routes import ROUTES
from cloud_api.sync_routes import SYNC_ROUTES
from edge.shop import NotFound, Shop
from edge.shop.testing import make_shop, postgres_unreachable
from sync import sites
from sync.client import SyncClient
from sync.cloud import CloudSync
from tests.parts import missing
from tests.sync_helpers import edge_config, make_edge, off_loop, prepare_cloud

BIN = Path(sys.executable).parent
AUTH_OF = {(r.method, r.full_path): r.auth for r in ROUTES + ADMIN_ROUTES + SYNC_ROUTES}


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "coresync-cloud"), *argv], capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def test_cli_provisions_sites_and_nodes(tmp_path: Path) -> None:
    where = ["--data-dir", str(tmp_path / "cloud")]
    done = _cli("sites", "add", "soho", "--name", "SoHo Spa", "--tax-rate", "0.08",
                "--timezone", "America/New_York", *where)  # fmt: skip
    assert done.returncode == 0, done.stderr
    listed = _cli("sites", "list", *where).stdout
    assert "soho\tSoHo Spa\t0.08\tAmerica/New_York" in listed
    added = _cli("nodes", "add", "soho-1", "--site", "soho", *where)
    assert added.returncode == 0, added.stderr
    secret = added.stdout.strip().splitlines()[-1]
    db_path = tmp_path / "cloud" / "cloud.db"
    with make_shop_at(db_path) as shop:
        assert Auth(shop.db).authenticate_node("soho-1", secret).subject == "soho-1"
    assert "soho-1\tsoho\tactive" in _cli("nodes", "list", *where).stdout
    assert _cli("nodes", "revoke", "soho-1", *where).returncode == 0
    with make_shop_at(db_path) as shop:
        with pytest.raises(Unauthenticated):
            Auth(shop.db).authenticate_node("soho-1", secret)
        with shop.db.read() as tx:
            actions = [r["action"] for r in tx.all("SELECT action FROM admin_audit ORDER BY id")]
    assert actions == ["site.add", "node.add", "node.revoke"]
    bad = _cli("nodes", "add", "x-1", "--site", "nowhere", *where)
    assert bad.returncode == 2 and "nowhere" in bad.stderr
    bad = _cli("sites", "add", "b", "--name", "B", "--tax-rate", "8", "--timezone", "UTC", *where)
    assert bad.returncode == 2 and "tax_rate" in bad.stderr
    bad = _cli("sites", "add", "b", "--name", "B", "--tax-rate", "0.1", "--timezone", "Mars/X",
               *where)  # fmt: skip
    assert bad.returncode == 2 and "timezone" in bad.stderr


def make_shop_at(path: Path) -> Any:
    from contextlib import contextmanager

    from edge.shop import SqliteDatabase

    @contextmanager
    def opened() -> Iterator[Shop]:
        db = SqliteDatabase(str(path))
        try:
            yield Shop(db)
        finally:
            db.close()

    return opened()


# ---- two sites, two nodes, over HTTP ------------------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def chain(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if request.param == "postgres" and (why := postgres_unreachable()):
        missing("PostgreSQL", why)
    with make_shop(request.param, tmp_path) as shop:
        cloud = prepare_cloud(shop, ())
        sites.add_site(shop.db, "soho", "SoHo", "0.08", "America/New_York", block_quota=3)
        sites.add_site(shop.db, "paris", "Paris", "0.20", "Europe/Paris")
        secrets = {"soho-1": cloud.auth.register_node("soho-1", "soho"),
                   "paris-1": cloud.auth.register_node("paris-1", "paris")}  # fmt: skip
        # Each site has its own stock; ava is a member of both spas, ben of soho only.
        for site in ("soho", "paris"):
            shop.restock("serum", {"quantity": 5, "site": site})
        sync = CloudSync(shop)
        sync.enroll(cloud.members["ava"], "paris", "test")
        sync.enroll(cloud.members["ava"], "soho", "test")
        sync.enroll(cloud.members["ben"], "soho", "test")
        cloud.auth.create_staff("chief@example.com", "Chief", "pw-123456", "admin")
        cloud.auth.create_staff("desk@example.com", "Desk", "pw-123456", "staff")
        cloud.auth.create_staff("soho-mgr@example.com", "Sam", "pw-123456", "manager", "soho")
        yield {"cloud": cloud, "secrets": secrets, "tmp": tmp_path}


@pytest.fixture
async def http(chain: dict[str, Any]) -> AsyncIterator[TestClient[Any, Any]]:
    cloud = chain["cloud"]
    async with TestClient(TestServer(build_app(cloud.shop, cloud.auth, workers=4))) as c:
        yield c


def node(chain: dict[str, Any], name: str) -> dict[str, str]:
    return {"Authorization": f"Node {name}:{chain['secrets'][name]}"}


async def _sync(shop: Shop, http: TestClient[Any, Any], name: str, secret: str) -> None:
    url = str(http.make_url("/")).rstrip("/")
    client = SyncClient(shop, edge_config(url, name), secret=secret)
    try:
        await client.sync_once()
    finally:
        await client.stop()


async def test_a_node_gets_nothing_of_another_site_through_any_route(
    chain: dict[str, Any], http: TestClient[Any, Any]
) -> None:
    cloud, tmp = chain["cloud"], chain["tmp"]
    paris = await off_loop(lambda: make_edge(tmp / "paris.db", "paris-1"))
    soho = await off_loop(lambda: make_edge(tmp / "soho.db", "soho-1"))
    try:
        await _sync(paris, http, "paris-1", chain["secrets"]["paris-1"])
        items = {"items": [{"product": "serum", "quantity": 1}],
                 "customer_notes": "PARIS-PRIVATE"}  # fmt: skip
        paris_order = await asyncio.to_thread(paris.create_order, cloud.members["ava"], items)
        await asyncio.to_thread(
            paris.set_order_status,
            paris_order.id,
            {"status": "processing", "staff_notes": "PARIS-STAFF-NOTE"},
        )
        await _sync(paris, http, "paris-1", chain["secrets"]["paris-1"])
        await _sync(soho, http, "soho-1", chain["secrets"]["soho-1"])
        assert (
            await asyncio.to_thread(cloud.shop.get_order, paris_order.id)
        ).status == "processing"
        with pytest.raises(NotFound):  # the partition kept it away from soho's edge
            await asyncio.to_thread(soho.get_order, paris_order.id)
        # The website's pages (not under /api/) take cookie sessions only; a node
        # credential gets the login page there (tests/test_auth_coverage.py).
        app_routes = [(r.method, r.resource.canonical) for r in http.server.app.router.routes()
                      if r.method != "HEAD" and r.resource is not None
                      and r.resource.canonical.startswith("/api/")]  # fmt: skip
        assert len(app_routes) == len(AUTH_OF) + 1  # + the OpenAPI document
        me = node(chain, "soho-1")
        for method, path in app_routes:
            level = AUTH_OF.get((method, path))
            url = path.replace("{id}", paris_order.id).replace("{slug}", "serum")
            if path == "/api/openapi.json":
                continue  # the public API description, no data
            assert level is not None, f"classify the new route {method} {path} for isolation"
            if level != "node":
                r = await http.request(method, url, headers=me, json={})
                text = await r.text()
                assert "PARIS" not in text and paris_order.id not in text, f"{path}: {text}"
                if level != "public":
                    assert r.status in (401, 403), f"{method} {path}: {r.status} for a node"
                continue
            body = await _node_call(http, method, path, me, paris_order.id)
            assert "PARIS" not in body and paris_order.id not in body, f"{method} {path}: {body}"
        # Writing another site's order through a push is refused, and the order stays.
        assert (
            await asyncio.to_thread(cloud.shop.get_order, paris_order.id)
        ).status == "processing"
    finally:
        await off_loop(lambda: paris.db.close())
        await off_loop(lambda: soho.db.close())


async def _node_call(
    http: TestClient[Any, Any], method: str, path: str, me: dict[str, str], target: str
) -> str:
    """Each node route, aimed at the other site's order where it takes an id."""
    payloads: dict[str, Any] = {
        "/api/v1/sync/push": {"changes": [{
            "key": "soho-1:999", "entity": "order", "entity_id": target, "op": "status",
            "payload": {"status": "completed", "staff_notes": None, "number": "x"},
            "created_at": "2026-01-01T00:00:00+00:00"}]},
        "/api/v1/sync/lease": {"kind": "PO", "year": 2026, "request_key": "soho-lease-1"},
        "/api/v1/sync/hello": {"incarnation": "0123456789abcdef", "first_seq": 1,
                               "reason": "new", "outbox_head": 0},
        "/api/v1/sync/recover": {"known": []},
    }  # fmt: skip
    url = path + ("?after=0&limit=1000" if path.endswith("sync/pull") else "")
    r = await http.request(method, url, headers=me, json=payloads.get(path))
    text = await r.text()
    assert r.status < 500, f"{method} {path}: {r.status} {text}"
    if path.endswith("sync/push"):
        ack = (await r.json())["acks"][0]
        assert ack["status"] == "rejected" and "another site" in ack["reason"], ack
        return ack["reason"].replace(target, "<paris order>")
    return text


async def test_number_blocks_have_a_quota_per_site(
    chain: dict[str, Any], http: TestClient[Any, Any]
) -> None:
    me = node(chain, "soho-1")
    for i in range(3):
        r = await http.post(
            "/api/v1/sync/lease",
            headers=me,
            json={"kind": "PO", "year": 2026, "request_key": f"key-{i:06d}"},
        )
        assert r.status == 200, await r.text()
    r = await http.post(
        "/api/v1/sync/lease",
        headers=me,
        json={"kind": "PO", "year": 2026, "request_key": "key-000009"},
    )
    assert r.status == 409 and (await r.json())["error"]["field"] == "block_quota"
    r = await http.post(
        "/api/v1/sync/lease",
        headers=me,  # a retry of a granted lease is fine
        json={"kind": "PO", "year": 2026, "request_key": "key-000001"},
    )
    assert r.status == 200
    r = await http.post(
        "/api/v1/sync/lease",
        headers=node(chain, "paris-1"),
        json={"kind": "PO", "year": 2026, "request_key": "key-000010"},
    )
    assert r.status == 200, "another site's quota is its own"


def _audit(shop: Shop) -> list[dict[str, Any]]:
    with shop.db.read() as tx:
        return tx.all("SELECT actor, action, target FROM admin_audit ORDER BY id")


async def _login(http: TestClient[Any, Any], email: str) -> dict[str, str]:
    r = await http.post("/api/v1/auth/login", json={"email": email, "password": "pw-123456"})
    return {"Authorization": f"Bearer {(await r.json())['token']}"}


async def test_chain_admin_over_http_is_audited(
    chain: dict[str, Any], http: TestClient[Any, Any]
) -> None:
    cloud = chain["cloud"]
    admin, desk = await _login(http, "chief@example.com"), await _login(http, "desk@example.com")
    site = {"id": "tokyo", "name": "Tokyo", "tax_rate": "0.10", "timezone": "Asia/Tokyo"}
    assert (await http.post("/api/v1/sites", json=site, headers=desk)).status == 403
    r = await http.post("/api/v1/sites", json=site, headers=admin)
    assert r.status == 201, await r.text()
    r = await http.post("/api/v1/sites", json={**site, "tax_rate": 0.1}, headers=admin)
    assert r.status == 422  # a number is not the decimal string asked for
    r = await http.post("/api/v1/nodes", json={"node_id": "tokyo-1", "site": "tokyo"},
                        headers=admin)  # fmt: skip
    created = await r.json()
    assert r.status == 201 and created["secret"]
    assert await asyncio.to_thread(cloud.auth.authenticate_node, "tokyo-1", created["secret"])
    tokyo_node = {"Authorization": f"Node tokyo-1:{created['secret']}"}
    assert (await http.get("/api/v1/sync/whoami", headers=tokyo_node)).status == 200
    listed = (await (await http.get("/api/v1/nodes", headers=admin)).json())["nodes"]
    tokyo = next(n for n in listed if n["node_id"] == "tokyo-1")
    assert (tokyo["site"], tokyo["active"]) == ("tokyo", True)
    r = await http.post("/api/v1/nodes/tokyo-1/revoke", json={}, headers=admin)
    assert r.status == 200
    with pytest.raises(Unauthenticated):
        await asyncio.to_thread(cloud.auth.authenticate_node, "tokyo-1", created["secret"])
    # Refused at its very next request: no credential cache outlives a revoke.
    assert (await http.get("/api/v1/sync/whoami", headers=tokyo_node)).status == 401
    ben = cloud.members["ben"]
    soho = await off_loop(lambda: make_edge(chain["tmp"] / "soho.db", "soho-1"))
    try:
        await _sync(soho, http, "soho-1", chain["secrets"]["soho-1"])
        assert (await asyncio.to_thread(soho.get_member, ben)).active is True
        assert (await http.post(f"/api/v1/members/{ben}/end", json={}, headers=desk)).status == 403
        r = await http.post(f"/api/v1/members/{ben}/end", json={}, headers=admin)
        assert r.status == 200 and (await r.json())["active"] is False
        assert (await asyncio.to_thread(cloud.shop.get_member, ben)).active is False
        await _sync(soho, http, "soho-1", chain["secrets"]["soho-1"])  # the spa learns it
        assert (await asyncio.to_thread(soho.get_member, ben)).active is False
    finally:
        await off_loop(lambda: soho.db.close())
    audit = await asyncio.to_thread(_audit, cloud.shop)
    assert [(a["action"], a["target"]) for a in audit] == [
        ("site.add", "soho"), ("site.add", "paris"), ("node.add", "soho-1"),
        ("node.add", "paris-1"), ("member.enroll", cloud.members["ava"]),
        ("member.enroll", cloud.members["ava"]), ("member.enroll", ben), ("site.add", "tokyo"),
        ("node.add", "tokyo-1"),
        ("node.revoke", "tokyo-1"), ("member.end", ben),
    ]  # fmt: skip
    assert audit[-1]["actor"].startswith("staff:")


# ---- a site's staff, through every route of the router ----------------------------------
PARIS_BODIES: dict[tuple[str, str], Any] = {
    # Bodies that pass validation, so the refusal is the site check and not a 422.
    ("POST", "/api/v1/shop/orders/{id}/status"): {"status": "processing"},
    ("POST", "/api/v1/shop/orders/{id}/payment"): {"payment_ref": "PAY-1"},
    ("POST", "/api/v1/concierge/requests/{id}/decline"): {"reason": "no"},
    ("POST", "/api/v1/concierge/requests/{id}/cost"): {"actual_cost": "20.00"},
    ("POST", "/api/v1/concierge/requests/{id}/status"): {"status": "processing"},
    ("POST", "/api/v1/shop/products/{slug}/restock"): {"quantity": 50, "site": "paris"},
    ("POST", "/api/v1/shop/products/{slug}/adjust"): {"delta": 50, "reason": "x", "site": "paris"},
    ("PATCH", "/api/v1/shop/products/{slug}"): {"name": "PARIS-RENAMED"},
    ("POST", "/api/v1/members/{id}/consent"): {"biometric": False},
    ("POST", "/api/v1/members/{id}/enroll"): {"site": "paris"},
    ("POST", "/api/v1/sites"): {"id": "x", "name": "X", "tax_rate": "0.1", "timezone": "UTC"},
    ("POST", "/api/v1/nodes"): {"node_id": "x-1", "site": "paris"},
}
# Routes with no record of another site to aim at; what they answer must hold no paris data.
NOT_CROSS_SITE = {
    ("POST", "/api/v1/auth/login"),  # public: the caller's own token
    ("POST", "/api/v1/members"),  # a new member, enrolled at the manager's own site
    ("POST", "/api/v1/shop/orders"),  # members only
    ("POST", "/api/v1/concierge/requests"),  # members only
    ("POST", "/api/v1/shop/products"),  # the chain's catalogue: refused (403) anyway
}


def _paris_state(shop: Shop, order_id: str, request_id: str, cleo: str) -> Any:
    with shop.db.read() as tx:
        return (
            tx.one("SELECT status, paid_at, staff_notes FROM orders WHERE id = ?", (order_id,)),
            tx.one(
                "SELECT status, actual_cost_cents FROM concierge_requests WHERE id = ?",
                (request_id,),
            ),
            tx.all("SELECT site, stock FROM site_stock ORDER BY site, product_id"),
            tx.all("SELECT * FROM member_consent WHERE member_id = ?", (cleo,)),
            tx.all("SELECT site FROM member_sites WHERE member_id = ?", (cleo,)),
            tx.all("SELECT name FROM products ORDER BY id"),
        )


async def test_a_sites_staff_reach_nothing_of_another_site_through_any_route(
    chain: dict[str, Any], http: TestClient[Any, Any]
) -> None:
    cloud = chain["cloud"]
    shop = cloud.shop

    def paris_records() -> tuple[str, str, str]:
        cleo = shop.create_member({"name": "Cleo PARIS", "email": "cleo@example.com",
                                   "phone": "+33 1 23 45 67 89", "date_of_birth": "1990-01-01",
                                   "tier": "premium"})  # fmt: skip
        CloudSync(shop).enroll(cleo.id, "paris", "test")
        order = shop.create_order(
            cleo.id, {"items": [{"product": "serum", "quantity": 1}], "site": "paris",
                      "customer_notes": "PARIS-NOTE"},
        )  # fmt: skip
        request = shop.submit_request(cleo.id, {
            "request_type": "gift_items", "title": "PARIS gift", "description": "PARIS",
            "budget_min": "1.00", "budget_max": "90.00", "site": "paris",
            "preferred_pickup_date": "2099-01-01"})  # fmt: skip
        return order.id, request.id, cleo.id

    order_id, request_id, cleo = await off_loop(paris_records)
    before = await off_loop(lambda: _paris_state(shop, order_id, request_id, cleo))
    me = await _login(http, "soho-mgr@example.com")
    # The members' website pages take no staff token at all (tests/test_auth_coverage.py:
    # every one redirects to /login); the API routes are what a site's staff can call.
    app_routes = [(r.method, r.resource.canonical) for r in http.server.app.router.routes()
                  if r.method != "HEAD" and r.resource is not None
                  and r.resource.canonical.startswith("/api/")]  # fmt: skip
    secret = ("PARIS", order_id, request_id, cleo)
    for method, path in app_routes:
        level = AUTH_OF.get((method, path))
        if path == "/api/openapi.json":
            continue
        assert level is not None, f"classify the new route {method} {path} for isolation"
        target = request_id if "/concierge/" in path else cleo if "/members/" in path else order_id
        url = path.replace("{id}", target).replace("{slug}", "serum")
        if path.startswith("/api/v1/sync/attention/"):
            url = path.replace("{id}", "1")
        body = PARIS_BODIES.get((method, path), {})
        r = await http.request(method, url, headers=me, json=body)
        text = (await r.text()).replace(target, "<the id asked for>")  # a 404 may echo it
        assert r.status < 500, f"{method} {path}: {r.status} {text}"
        assert not any(s in text for s in secret), f"{method} {path} leaked: {text}"
        if level == "node":
            assert r.status in (401, 403), f"{method} {path}: {r.status}"
        elif method != "GET" and (method, path) not in NOT_CROSS_SITE:
            assert r.status in (403, 404), f"{method} {path}: {r.status} {text}"
    after = await off_loop(lambda: _paris_state(shop, order_id, request_id, cleo))
    assert after == before, "a site's staff changed another site's data"
    # Their own site works: the same manager restocks soho and sees soho's stock.
    r = await http.post("/api/v1/shop/products/serum/restock", json={"quantity": 2}, headers=me)
    assert r.status == 200 and (await r.json())["stock"] == 7, await r.text()
