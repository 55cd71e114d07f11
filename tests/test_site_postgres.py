"""The website on a chain's PostgreSQL (and on SQLite): its own tables migrate,
the login throttle's SQL runs through the shop's transactions, a member logs
in, orders for pickup and exports their data; NUL characters are refused by
name; served over TLS, its cookies are Secure."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import ssl
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web as aiohttp_web
from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cloud_api.app import build_app
from cloud_api.auth import Auth
from cloud_api.demo import MEMBER_LOGIN, seed
from edge.shop import Shop
from edge.shop.testing import make_shop, postgres_unreachable
from tests.conftest import free_port
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


def self_signed(tmp: Path) -> ssl.SSLContext:
    """A throw-away certificate for 127.0.0.1 (the site behind TLS)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(
            "127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    return context


async def test_cookies_are_secure_over_tls(chain: tuple[Shop, Auth], tmp_path: Path) -> None:
    context = await asyncio.to_thread(self_signed, tmp_path)
    runner = aiohttp_web.AppRunner(build_app(*chain, workers=4))
    await runner.setup()
    port = free_port()
    await aiohttp_web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    base = f"https://127.0.0.1:{port}"
    try:
        jar = aiohttp.CookieJar(unsafe=True)
        plain = aiohttp.TCPConnector(ssl=False)  # the throw-away certificate is not trusted
        async with aiohttp.ClientSession(cookie_jar=jar, connector=plain) as http:
            form = await http.get(base + "/login")
            assert "Secure" in form.headers["Set-Cookie"]
            fields = {"csrf_token": csrf_of(await form.text()), "email": MEMBER_LOGIN[0],
                      "password": MEMBER_LOGIN[1]}  # fmt: skip
            r = await http.post(base + "/login", data=fields, allow_redirects=False)
            session = next(c for c in r.headers.getall("Set-Cookie") if "coresync_member=" in c)
            assert "Secure" in session and "HttpOnly" in session and "SameSite=Lax" in session
    finally:
        await runner.cleanup()
