"""The members' website: the shop page over a 5,000-product catalogue (24 per
page, featured first), p50/p95 per request with 8 concurrent members, and the
page weight; as a ratio to the JSON catalogue page of the API measured in the
same run (same filters, same page size), so a loaded machine shows in both.

    .venv/bin/python bench/bench_site.py [--requests 400] [--products 5000] [--skip-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from bench_cloud_orders import CATEGORIES, CLIENTS, WORDS, seed

from cloud_api.app import build_app
from cloud_api.auth import Auth
from cloud_api.site import store as site_store
from cloud_api.site.web import password_hasher
from edge.shop import Shop
from edge.shop.testing import make_shop, postgres_unreachable
from sync.schema import migrate_sync

PASSWORD = "bench-password"


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[94] * 1000


def query(rng: random.Random, pages: int) -> dict[str, str]:
    """A member's browsing: a page of all products, a category, or a search."""
    kind = rng.randrange(3)
    if kind == 0:
        return {"page": str(rng.randint(1, pages))}
    if kind == 1:
        return {"category": rng.choice(CATEGORIES), "page": str(rng.randint(1, pages // 4))}
    return {"search": rng.choice(WORDS)}


async def login(session: aiohttp.ClientSession, base: str, email: str) -> None:
    form = await (await session.get(f"{base}/login")).text()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf is not None
    data = {"csrf_token": csrf.group(1), "email": email, "password": PASSWORD}
    async with session.post(f"{base}/login", data=data, allow_redirects=False) as r:
        assert r.status == 303, await r.text()


async def drive(base: str, tokens: list[str], requests: int, pages: int) -> dict[str, float]:
    results: dict[str, float] = {}

    sessions = [aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
                for _ in range(CLIENTS)]  # fmt: skip
    for i, s in enumerate(sessions):  # one at a time: logins from one address are throttled
        await login(s, base, f"bench{i}@example.com")

    async def member(i: int, kind: str) -> list[float]:
        rng, s, lat = random.Random(i), sessions[i], []
        for _ in range(requests // CLIENTS):
            q = query(rng, pages)
            t0 = time.perf_counter()
            if kind == "site":
                async with s.get(f"{base}/", params=q) as r:
                    assert r.status == 200, await r.text()
                    await r.read()
            else:
                h = {"Authorization": f"Bearer {tokens[i]}"}
                async with s.get(f"{base}/api/v1/shop/products",
                                 params={**q, "page_size": "24"}, headers=h) as r:  # fmt: skip
                    assert r.status == 200, await r.text()
                    await r.read()
            lat.append(time.perf_counter() - t0)
        return lat

    try:
        for kind in ("api", "site"):
            per = await asyncio.gather(*(member(i, kind) for i in range(CLIENTS)))
            flat = [x for lat in per for x in lat]
            results[f"{kind}_p50"] = statistics.median(flat) * 1000
            results[f"{kind}_p95"] = p95(flat)
        html = await (await sessions[0].get(f"{base}/")).read()
        css = await (await sessions[0].get(f"{base}/assets/site.css")).read()
    finally:
        for s in sessions:
            await s.close()
    results["html_bytes"], results["css_bytes"] = len(html), len(css)
    return results


async def serve_and_drive(shop: Shop, auth: Auth, tokens: list[str], a: argparse.Namespace) -> (
    dict[str, float]
):  # fmt: skip
    runner = web.AppRunner(build_app(shop, auth))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        pages = -(-a.products // 24)
        return await drive(f"http://127.0.0.1:{port}", tokens, a.requests, pages)
    finally:
        await runner.cleanup()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--products", type=int, default=5000)
    p.add_argument("--skip-postgres", action="store_true")
    a = p.parse_args()
    for backend in ["sqlite"] + ([] if a.skip_postgres else ["postgres"]):
        if backend == "postgres" and (why := postgres_unreachable()):
            print(f"postgres: skipped ({why})")
            continue
        with tempfile.TemporaryDirectory() as tmp, make_shop(backend, Path(tmp)) as shop:
            auth = Auth(shop.db)
            auth.migrate()
            migrate_sync(shop.db)
            site_store.migrate_site(shop.db)
            tokens = seed(shop, auth, a.products)
            hashed = password_hasher().hash(PASSWORD)
            for c in range(CLIENTS):
                member = shop.find_member_by_email(f"bench{c}@example.com")
                site_store.set_password_hash(shop.db, member.id, hashed)
            r = asyncio.run(serve_and_drive(shop, auth, tokens, a))
        print(
            f"{backend:8s} {a.products} products, 24/page, {CLIENTS} members | shop page "
            f"p50 {r['site_p50']:6.1f} ms p95 {r['site_p95']:6.1f} ms | API page p50 "
            f"{r['api_p50']:6.1f} ms p95 {r['api_p95']:6.1f} ms | p95 ratio "
            f"{r['site_p95'] / r['api_p95']:4.2f} | weight HTML {r['html_bytes'] / 1024:5.1f} KiB"
            f" + CSS {r['css_bytes'] / 1024:4.1f} KiB, no script"
        )


if __name__ == "__main__":
    main()
