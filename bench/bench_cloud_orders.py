"""Cloud orders/s on PostgreSQL with 8, 32 and 64 concurrent clients, as a ratio to a bare
aiohttp POST measured in the same run, on the same machine, by the same client.

    .venv/bin/python bench/bench_cloud_orders.py [--seconds 4] [--workers 1 2]

The cloud is a real ``coresync-cloud serve`` process (``--workers N``) on a
throw-away schema of database ``test``, a chain with one site; each client
is a member ordering one unit of its own product for pickup at that site.
The baseline is a bare aiohttp app in its own process that reads the JSON
body and answers 201 with a small JSON object.  Goal (issue 13): a ratio of at
least 0.25 at 32 clients, and orders/s that grow from 8 to 32 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloud_api.auth import Auth
from edge.shop import PostgresDatabase, Shop
from edge.shop.testing import PG_DSN, postgres_schema, postgres_unreachable
from sync import sites
from sync.schema import migrate_sync
from sync.sites import SiteBook

LEVELS = (8, 32, 64)
BARE = """
from aiohttp import web
async def order(request):
    body = await request.json()
    return web.json_response({"id": "x", "items": body["items"]}, status=201)
app = web.Application()
app.router.add_post("/api/v1/shop/orders", order)
web.run_app(app, host="127.0.0.1", port=int(__import__("sys").argv[1]), print=None)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, listeners: int = 1) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
        up = sum(1 for r in rows if r.split()[1].endswith(f":{port:04X}") and r.split()[3] == "0A")
        if up >= listeners:
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def seed(db: PostgresDatabase, clients: int) -> list[str]:
    shop = Shop(db)
    shop.migrate()
    auth = Auth(db)
    auth.migrate()
    migrate_sync(db)
    shop.site_book = SiteBook()
    sites.add_site(db, "bench", "Bench Spa", "0.08", "America/New_York")
    tokens = []
    for c in range(clients):
        shop.create_product({"name": f"Item {c}", "slug": f"p-{c}", "category": "skincare",
                             "price": "20.00"})  # fmt: skip
        shop.restock(f"p-{c}", {"quantity": 1_000_000, "site": "bench"})
        m = shop.create_member({"name": f"Bench {c}", "email": f"b{c}@example.com",
                                "phone": "+1 555 0100", "date_of_birth": "1990-01-01"})  # fmt: skip
        tokens.append(auth.issue_member_token(m.id))
    return tokens


async def load(url: str, tokens: list[str], clients: int, seconds: float) -> float:
    """Orders/s: ``clients`` loops posting orders back to back for ``seconds``."""
    done = 0
    stop = time.perf_counter() + seconds
    conn = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=conn) as session:

        async def client(i: int) -> None:
            nonlocal done
            h = {"Authorization": f"Bearer {tokens[i]}"}
            body = {"items": [{"product": f"p-{i}", "quantity": 1}], "site": "bench"}
            while time.perf_counter() < stop:
                async with session.post(f"{url}/api/v1/shop/orders", json=body, headers=h) as r:
                    if r.status != 201:
                        raise RuntimeError(f"{r.status}: {await r.text()}")
                    await r.read()
                done += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        return done / (time.perf_counter() - t0)


def interleaved(
    bare: str, cloud: str, tokens: list[str], n: int, rounds: int, seconds: float
) -> tuple[float, float, float]:
    """Bare and cloud rounds alternate, so load from other work hits both alike; the
    median of the per-round ratios."""
    pairs = []
    for _ in range(rounds):
        b = asyncio.run(load(bare, ["t"] * n, n, seconds))
        c = asyncio.run(load(cloud, tokens, n, seconds))
        pairs.append((b, c))
    ratios = sorted(c / b for b, c in pairs)
    return (statistics.median(b for b, _ in pairs), statistics.median(c for _, c in pairs),
            ratios[len(ratios) // 2])  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=2.0, help="per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    a = p.parse_args()
    if why := postgres_unreachable():
        raise SystemExit(f"PostgreSQL needed: {why}")
    bare_port = free_port()
    bare = subprocess.Popen([sys.executable, "-c", BARE, str(bare_port)])
    exe = Path(sys.executable).parent / "coresync-cloud"
    try:
        wait_port(bare_port)
        for workers in a.workers:
            with postgres_schema() as schema:
                db = PostgresDatabase(PG_DSN, schema=schema, pool_size=4)
                tokens = seed(db, max(LEVELS))
                port = free_port()
                cloud = subprocess.Popen([str(exe), "serve", "--db", PG_DSN, "--schema", schema,
                                          "--port", str(port), "--workers", str(workers)],
                                         stderr=subprocess.DEVNULL)  # fmt: skip
                try:
                    wait_port(port, workers)
                    for n in LEVELS:
                        b, c, ratio = interleaved(f"http://127.0.0.1:{bare_port}",
                                                  f"http://127.0.0.1:{port}", tokens, n,
                                                  a.rounds, a.seconds)  # fmt: skip
                        print(f"PostgreSQL, {workers} worker(s), {n:2d} clients: cloud {c:5.0f}"
                              f" orders/s, bare POST {b:5.0f}/s, ratio {ratio:.2f}")  # fmt: skip
                finally:
                    cloud.terminate()
                    cloud.wait()
                check(db)
    finally:
        bare.terminate()
        bare.wait()


def check(db: PostgresDatabase) -> None:
    shop = Shop(db)
    shop.site_book = SiteBook()
    assert shop.ledger_mismatches() == []
    with db.read() as tx:
        dup = tx.scalar("SELECT COUNT(*) - COUNT(DISTINCT number) AS d FROM orders")
    assert dup == 0, "duplicate numbers"
    db.close()


if __name__ == "__main__":
    main()
