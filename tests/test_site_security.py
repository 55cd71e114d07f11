"""The website's defences over real HTTP against a real ``coresync-cloud demo``:
forms without the CSRF token are refused and change nothing, another member's
order is 404, logins are throttled (concurrent guesses included), cookies are
HttpOnly and SameSite=Lax, errors are pages, not stack traces, and the public
legal pages state the door's own retention period and the site's facts."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from cloud_api.demo import MEMBER_PASSWORDS, SITE_ADDRESS
from edge.door.config import DoorConfig
from edge.shop.demo_seed import SITE_PHONE
from tests.site_demo import DemoCloud, csrf_of, demo, http_login, start_demo, stop_demo

__all__ = ["demo"]


async def test_forms_without_the_csrf_token_are_refused(demo: DemoCloud) -> None:
    http = await http_login(demo.url, demo.email, demo.password)
    async with http:
        shop = await (await http.get(demo.url + "/")).text()
        token = csrf_of(shop)
        for fields in ({}, {"csrf_token": "forged"}, {"csrf_token": token[:-1] + "x"}):
            r = await http.post(demo.url + "/cart/add", data={"product": "jade-roller", **fields})
            page = await r.text()
            assert r.status == 403, page
            assert r.content_type == "text/html" and "reload it" in page
        cart = await (await http.get(demo.url + "/cart")).text()
        assert "Your cart is empty" in cart
        r = await http.post(demo.url + "/account/consent", data={})
        assert r.status == 403
        # The same form with its token works.
        r = await http.post(demo.url + "/cart/add", data={"product": "jade-roller",
                                                          "csrf_token": token})  # fmt: skip
        assert r.status == 200 and 'data-slug="jade-roller"' in await r.text()
    # The login form is protected as well (double-submit cookie).
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as anon:
        r = await anon.post(demo.url + "/login", allow_redirects=False,
                            data={"email": demo.email, "password": demo.password})  # fmt: skip
        assert r.status == 403 and "coresync_member" not in r.cookies


async def test_another_members_order_is_not_found(demo: DemoCloud) -> None:
    ava = await http_login(demo.url, demo.email, demo.password)
    ben = await http_login(demo.url, "ben@example.com", MEMBER_PASSWORDS["ben@example.com"])
    async with ava, ben:
        token = csrf_of(await (await ava.get(demo.url + "/")).text())
        await ava.post(demo.url + "/cart/add", data={"product": "gua-sha-stone",
                                                     "csrf_token": token})  # fmt: skip
        r = await ava.post(demo.url + "/cart", allow_redirects=False,
                           data={"csrf_token": token, "action": "order"})  # fmt: skip
        assert r.status == 303, await r.text()
        mine = await asyncio.to_thread(demo.api, "/api/v1/shop/orders")
        order_id = mine["items"][0]["id"]
        assert (await ava.get(f"{demo.url}/orders/{order_id}")).status == 200
        ben_token = csrf_of(await (await ben.get(demo.url + "/orders")).text())
        r = await ben.get(f"{demo.url}/orders/{order_id}")
        assert r.status == 404 and "gua" not in (await r.text()).lower()
        r = await ben.post(f"{demo.url}/orders/{order_id}/cancel", data={"csrf_token": ben_token})
        assert r.status == 404
        after = await asyncio.to_thread(demo.api, f"/api/v1/shop/orders/{order_id}")
        assert after["status"] == "pending"
        # An unknown page is a page too, never a stack trace.
        r = await ben.get(demo.url + "/no/such/page")
        assert r.status == 404 and r.content_type == "text/html"


async def test_session_cookie_flags_and_logout(demo: DemoCloud) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        form = await (await http.get(demo.url + "/login")).text()
        r = await http.post(demo.url + "/login", allow_redirects=False,
                            data={"csrf_token": csrf_of(form), "email": demo.email,
                                  "password": demo.password})  # fmt: skip
        cookie = r.headers.getall("Set-Cookie")[0]
        assert cookie.startswith("coresync_member=")
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert "Secure" not in cookie  # plain HTTP here; over TLS the flag is set
        assert (await http.get(demo.url + "/orders", allow_redirects=False)).status == 200
        await http.get(demo.url + "/logout")
        r = await http.get(demo.url + "/orders", allow_redirects=False)
        assert r.status == 303 and r.headers["Location"].startswith("/login?next=")


@pytest.fixture
def lonely_demo(tmp_path: Path) -> Iterator[DemoCloud]:
    """A cloud of its own: the throttle also counts per client address."""
    cloud = start_demo(tmp_path / "demo")
    try:
        yield cloud
    finally:
        stop_demo(cloud)


async def _attempt(cloud: DemoCloud, password: str) -> tuple[int, str]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        form = await (await http.get(cloud.url + "/login")).text()
        r = await http.post(cloud.url + "/login", allow_redirects=False,
                            data={"csrf_token": csrf_of(form), "email": cloud.email,
                                  "password": password})  # fmt: skip
        return r.status, await r.text()


async def test_logins_are_throttled(lonely_demo: DemoCloud) -> None:
    # Ten guesses at once: only as many as the free attempts are even checked.
    burst = await asyncio.gather(*(_attempt(lonely_demo, f"guess-{i}") for i in range(10)))
    statuses = sorted(status for status, _ in burst)
    assert statuses.count(401) <= 3 and statuses.count(429) >= 7, statuses
    refused = next(page for status, page in burst if status == 429)
    assert re.search(r'id="err-password">too many login attempts at once', refused)
    # Sequential guesses: once past the free attempts, the account is locked
    # and even the right password is refused until the lockout ends.
    status = 401
    for i in range(5):
        status, page = await _attempt(lonely_demo, f"again-{i}")
        if status == 429:
            break
    assert status == 429 and "too many failed logins" in page
    status, page = await _attempt(lonely_demo, lonely_demo.password)
    assert status == 429, page


async def test_legal_pages_are_public_and_say_what_the_product_does(demo: DemoCloud) -> None:
    retention = DoorConfig.model_fields["retention_days"].default  # the edge's setting
    async with aiohttp.ClientSession() as anon:
        privacy = await (await anon.get(demo.url + "/privacy")).text()
        for path in ("/terms", "/refunds"):
            page = await anon.get(demo.url + path)
            assert page.status == 200 and SITE_ADDRESS in await page.text()
    assert f"{retention} days ({round(retention / 365)} years) after your last visit" in privacy
    assert "written consent" in privacy and "never sent to the cloud" in privacy
    assert SITE_ADDRESS in privacy and SITE_PHONE in privacy  # from the site record
    for claim in ("Firebase", "Google Analytics", "analytics provider"):
        assert claim not in privacy
