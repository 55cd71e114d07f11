"""The website on a chain's PostgreSQL (and on SQLite): its own tables migrate,
the login throttle's SQL runs through the shop's transactions, a member logs
in, orders for pickup and exports their data."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cloud_api.app import build_app
from cloud_api.auth import Auth
from cloud_api.demo import MEMBER_LOGIN, seed
from edge.shop import Shop
from edge.shop.testing import make_shop, postgres_unreachable
from tests.parts import missing
from tests.site_demo import csrf_of


@pytest.fixture(params=["sqlite", "postgres"])
def chain(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Shop, Auth]]:
    if request.param == "postgres" and (why := postgres_unreachable()):
        missing("PostgreSQL", why)
    with make_shop(request.param, tmp_path) as shop:
        auth = Auth(shop.db)
        auth.migrate()
        seed(shop, auth)
        yield shop, auth


@pytest.fixture
async def web(chain: tuple[Shop, Auth]) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(build_app(*chain, workers=4))) as client:
        yield client


async def log_in(web: TestClient[Any, Any], password: str) -> Any:
    form = await (await web.get("/login")).text()
    fields = {"csrf_token": csrf_of(form), "email": MEMBER_LOGIN[0], "password": password}
    return await web.post("/login", data=fields, allow_redirects=False)


async def test_member_logs_in_orders_and_exports(web: TestClient[Any, Any]) -> None:
    wrong = await log_in(web, "not-the-password")
    assert wrong.status == 401
    assert 'id="err-password">Wrong email or password.' in await wrong.text()
    assert (await log_in(web, MEMBER_LOGIN[1])).status == 303
    shop_page = await (await web.get("/?category=skincare")).text()
    assert 'data-slug="rose-hip-serum"' in shop_page and 'data-slug="jade-roller"' not in shop_page
    token = csrf_of(shop_page)
    r = await web.post("/cart/add", data={"product": "rose-hip-serum", "csrf_token": token})
    assert 'id="subtotal">$54.40' in await r.text()  # the member price
    order = {"csrf_token": token, "action": "order", "site": "brooklyn", "qty-rose-hip-serum": "2"}
    r = await web.post("/cart", data=order, allow_redirects=False)
    assert r.status == 303 and re.match(r"/orders\?placed=PO-\d{4}-\d{6}$", r.headers["Location"])
    export = await (await web.get("/account/export")).json()
    [order] = export["orders"]
    assert order["total"] == "117.50" and order["items"][0]["quantity"] == 2  # 108.80 + 8.70
    assert export["website_password"]["set_at"]


async def test_nul_characters_are_refused_naming_the_field(web: TestClient[Any, Any]) -> None:
    assert (await log_in(web, MEMBER_LOGIN[1])).status == 303
    r = await web.get("/orders/x%00y")
    assert r.status == 422 and "id: NUL characters are not allowed" in await r.text()
    token = csrf_of(await (await web.get("/account")).text())
    form = {"csrf_token": token, "name": "A\x00", "phone": "1"}
    r = await web.post("/account/profile", data=form)
    assert r.status == 422 and "name: NUL characters are not allowed" in await r.text()
    assert (await web.get("/account")).status == 200  # nothing stored, nothing broken
