"""No credentials, no access: every route of the edge LAN API and of the cloud
API, enumerated from the application's own router, answers 401 with a JSON
error to a request without credentials and to one with a made-up token —
except the short list of public routes below, each with the reason it is public.
A route added without an auth rule fails here without anyone editing a list.

The cloud's website pages (every path outside /api/) work by cookie session:
without one, each page that is not in ``cloud_api.site.PUBLIC_PAGES`` (each
with its reason) sends the visitor to /login and shows nothing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from cloud_api.app import build_app
from cloud_api.auth import Auth
from cloud_api.demo import seed
from cloud_api.site import PUBLIC_PAGES
from edge.shop.testing import make_shop
from tests.conftest import Broker
from tests.test_api_support import ApiSite, start_api_site, stop_api_site

EDGE_PUBLIC = {
    ("GET", "/"): "the dashboard page shell; it holds no data and logs in through the API",
    ("GET", "/dashboard"): "the dashboard page shell, as /",
    ("GET", "/tablet"): "the tablet page shell; it pairs and authenticates through the API",
    ("GET", "/site/logo"): "the spa's logo for the tablets' <img> (sends no token); no data",
    ("GET", "/static"): "scripts and styles of the pages (a static folder), no data",
    ("GET", "/healthz"): "liveness for systemd and a load balancer; states, no data",
    ("GET", "/api/openapi.json"): "the API's own description, the same for every site",
    ("POST", "/api/v1/auth/login"): "where credentials are obtained",
    ("POST", "/api/v1/tablets/pair"): "a tablet trades a one-time pairing code for its token",
}

CLOUD_PUBLIC = {
    ("GET", "/api/openapi.json"): "the API's own description",
    ("POST", "/api/v1/auth/login"): "where staff credentials are obtained",
}

# Values for path parameters: real ones where the route checks existence
# after auth, so a 404 could never hide a missing auth check.
PATH_VALUES = {
    "room_id": "room-a",
    "device_id": "ceiling",
    "scene_id": "relax",
}

BAD_CREDENTIALS: list[dict[str, str]] = [
    {},
    {"Authorization": "Bearer css_not-a-token"},
    {"Authorization": "Node edge-x:not-a-secret"},
]


def routes_of(app: web.Application) -> list[tuple[str, str]]:
    """(method, canonical path) of every route the app serves, HEAD left out
    (aiohttp adds it beside every GET)."""
    found = set()
    for route in app.router.routes():
        if route.method in {"HEAD", "OPTIONS"}:
            continue
        found.add((route.method, route.resource.canonical if route.resource else ""))
    return sorted(found)


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(?::[^}]*)?\}", lambda m: PATH_VALUES.get(m.group(1), "x"), path)


async def assert_all_refused(
    client: TestClient[Any, Any],
    public: dict[tuple[str, str], str],
    only: Callable[[str], bool] = lambda path: True,
) -> int:
    routes = [(m, p) for m, p in routes_of(client.app) if only(p)]  # type: ignore[arg-type]
    stale = set(public) - set(routes)
    assert not stale, f"public list names routes that do not exist: {sorted(stale)}"
    checked = 0
    for method, path in routes:
        if (method, path) in public:
            continue
        for headers in BAD_CREDENTIALS:
            resp = await client.request(method, concrete(path), json={}, headers=headers)
            body = await resp.text()
            sent = headers or "no credentials"
            assert resp.status == 401, f"{method} {path} with {sent}: {resp.status} {body}"
            assert (await resp.json())["error"]["code"] == "unauthenticated", (method, path, body)
        checked += 1
    return checked


@pytest.fixture
async def lan_api(mqtt_broker: Broker, tmp_path: Path) -> AsyncIterator[ApiSite]:
    # /metrics answers loopback without a token (a local exporter); the test
    # client is on loopback, so switch that off: from the LAN it needs one.
    site = await start_api_site(mqtt_broker, tmp_path, metrics_public_on_loopback=False)
    try:
        yield site
    finally:
        await stop_api_site(site)


async def test_every_edge_route_needs_credentials(lan_api: ApiSite) -> None:
    checked = await assert_all_refused(lan_api.client, EDGE_PUBLIC)
    # The shop, door, sync, user and tablet routes are all in the router.
    assert checked >= 30, checked
    assert await lan_api.core.store.commands() == []


@pytest.fixture
def cloud_app(tmp_path: Path) -> Iterator[web.Application]:
    with make_shop("sqlite", tmp_path) as shop:
        auth = Auth(shop.db)
        auth.migrate()
        seed(shop, auth)
        yield build_app(shop, auth)


def is_api(path: str) -> bool:
    return path.startswith("/api/")


async def test_every_cloud_route_needs_credentials(cloud_app: web.Application) -> None:
    async with TestClient(TestServer(cloud_app)) as client:
        checked = await assert_all_refused(client, CLOUD_PUBLIC, only=is_api)
    assert checked >= 20, checked


async def test_every_member_page_needs_a_session(cloud_app: web.Application) -> None:
    """Bearer tokens, node credentials and made-up cookies open no page."""
    pages = [(m, p) for m, p in routes_of(cloud_app) if not is_api(p)]
    stale = set(PUBLIC_PAGES) - set(pages)
    assert not stale, f"public pages that do not exist: {sorted(stale)}"
    attempts = [*BAD_CREDENTIALS, {"Authorization": "Bearer demo-member-ava"},
                {"Cookie": "coresync_member=made-up-session"}]  # fmt: skip
    checked = 0
    async with TestClient(TestServer(cloud_app)) as client:
        for method, path in pages:
            if (method, path) in PUBLIC_PAGES:
                continue
            for headers in attempts:
                resp = await client.request(
                    method, concrete(path), data={}, headers=headers, allow_redirects=False
                )
                where = resp.headers.get("Location", "")
                assert resp.status == 303, f"{method} {path} with {headers}: {resp.status}"
                assert where.startswith("/login?next="), (method, path, where)
                assert "Ava" not in await resp.text()
            checked += 1
        for path in ("/login", "/privacy", "/terms", "/refunds", "/assets/site.css"):
            assert (await client.get(path)).status == 200, path
    assert checked >= 15, checked
