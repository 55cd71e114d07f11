"""Cloud API throughput: orders/s with 8 concurrent clients, catalogue p99 over 5,000 products.

    .venv/bin/python bench/bench_cloud_orders.py [--orders 400] [--skip-postgres]

Runs the real aiohttp app on a local port against SQLite (a temp file) and
PostgreSQL (a throw-away schema in database ``test``), and prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import aiohttp
from aiohttp import web

from cloud_api.app import build_app
from cloud_api.auth import Auth
from edge.shop import Shop
from edge.shop.testing import make_shop, postgres_unreachable

CLIENTS = 8
CATEGORIES = ("skincare", "wellness_tech", "accessories", "supplements")
WORDS = ("rose", "jade", "lavender", "collagen", "infrared", "clay", "mist", "robe", "zinc")


def seed(shop: Shop, auth: Auth, products: int) -> list[str]:
    for n in range(products):
        word = WORDS[n % len(WORDS)]
        shop.create_product(
            {"name": f"{word.title()} item {n}", "slug": f"p-{n}", "category": CATEGORIES[n % 4],
             "price": Decimal("20.00") + n % 50, "member_price": Decimal("15.00") + n % 50,
             "short_description": f"A {word} product", "description": f"Lovely {word} no {n}",
             "featured": n % 10 == 0},
            initial_stock=100_000 if n == 0 else 10,
        )  # fmt: skip
    tokens = []
    for c in range(CLIENTS):
        m = shop.create_member(
            {"name": f"Bench {c}", "email": f"bench{c}@example.com", "phone": "+1 555 0100",
             "date_of_birth": "1990-01-01", "tier": "premium"}
        )  # fmt: skip
        tokens.append(auth.issue_member_token(m.id))
    return tokens


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] * 1000


async def drive(base: str, tokens: list[str], orders: int, lists: int) -> dict[str, float]:
    async with aiohttp.ClientSession() as session:

        async def client(token: str, count: int, make: object) -> list[float]:
            lat = []
            h = {"Authorization": f"Bearer {token}"}
            for i in range(count):
                t0 = time.perf_counter()
                if make == "order":
                    body = {"items": [{"product": "p-0", "quantity": 1}]}
                    async with session.post(f"{base}/shop/orders", json=body, headers=h) as r:
                        assert r.status == 201, await r.text()
                else:
                    q = {"category": CATEGORIES[i % 4], "search": WORDS[i % len(WORDS)],
                         "page_size": "20"}  # fmt: skip
                    async with session.get(f"{base}/shop/products", params=q, headers=h) as r:
                        assert r.status == 200, await r.text()
                        await r.read()
                lat.append(time.perf_counter() - t0)
            return lat

        results: dict[str, float] = {}
        for kind, total in (("order", orders), ("list", lists)):
            t0 = time.perf_counter()
            per = await asyncio.gather(*(client(t, total // CLIENTS, kind) for t in tokens))
            elapsed = time.perf_counter() - t0
            flat = [x for lat in per for x in lat]
            results[f"{kind}_per_s"] = len(flat) / elapsed
            results[f"{kind}_p50_ms"] = statistics.median(flat) * 1000
            results[f"{kind}_p99_ms"] = p99(flat)
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
        return await drive(f"http://127.0.0.1:{port}/api/v1", tokens, a.orders, a.lists)
    finally:
        await runner.cleanup()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--orders", type=int, default=400)
    p.add_argument("--lists", type=int, default=400)
    p.add_argument("--products", type=int, default=5000)
    p.add_argument("--skip-postgres", action="store_true")
    a = p.parse_args()
    backends = ["sqlite"] + ([] if a.skip_postgres else ["postgres"])
    for backend in backends:
        if backend == "postgres" and (why := postgres_unreachable()):
            print(f"postgres: skipped ({why})")
            continue
        with tempfile.TemporaryDirectory() as tmp, make_shop(backend, Path(tmp)) as shop:
            auth = Auth(shop.db)
            auth.migrate()
            t0 = time.perf_counter()
            tokens = seed(shop, auth, a.products)
            seeded = time.perf_counter() - t0
            r = asyncio.run(serve_and_drive(shop, auth, tokens, a))
            assert shop.ledger_mismatches() == []
        print(
            f"{backend:8s} seed {a.products} products {seeded:5.1f} s | "
            f"orders {r['order_per_s']:6.1f}/s p50 {r['order_p50_ms']:6.1f} ms "
            f"p99 {r['order_p99_ms']:6.1f} ms | catalogue filter+search "
            f"{r['list_per_s']:6.1f}/s p50 {r['list_p50_ms']:6.1f} ms "
            f"p99 {r['list_p99_ms']:6.1f} ms"
        )


if __name__ == "__main__":
    main()
