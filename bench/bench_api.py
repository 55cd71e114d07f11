"""LAN API figures on a real site (Mosquitto, simulated Zigbee2MQTT devices,
real SQLite), printed, not asserted.

Without --broker it starts its own Mosquitto on a free port with
``set_tcp_nodelay true``, as docs/mqtt.md tells sites to configure theirs: a
broker with Nagle on holds each small confirmation for ~40 ms.

1. GET /api/v1/rooms/{id} with a valid token: requests/s on one worker, next
   to a bare aiohttp "hello" server in the same run (target >= 50 %).
2. WebSocket fan-out to 50 tablets: device state change (event published)
   to the last client receiving it, p99 (target <= 50 ms).
3. Tablet scene request until every device confirmed, p99 (target <= 30 ms).

The load generator runs in a child process so it does not share the
server's event loop.  Run: ``.venv/bin/python bench/bench_api.py``
(``--broker 127.0.0.1:1883`` to use an existing broker instead).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edge.core import Actor  # noqa: E402
from tests.conftest import Broker, MosquittoProcess  # noqa: E402
from tests.test_api_support import start_api_site, stop_api_site  # noqa: E402


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


# -- load generator (child process) -----------------------------------------------------
async def load(url: str, token: str | None, seconds: float, concurrency: int) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    done = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                async with http.get(url, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"{url}: HTTP {resp.status}")
                done += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done


def run_load(url: str, token: str | None, seconds: float, concurrency: int) -> float:
    args = [
        sys.executable,
        __file__,
        "--load",
        url,
        "--seconds",
        str(seconds),
        "--concurrency",
        str(concurrency),
    ]
    if token:
        args += ["--token", token]
    return float(subprocess.run(args, capture_output=True, text=True, check=True).stdout) / seconds


async def run_load_async(url: str, token: str | None, seconds: float, concurrency: int) -> float:
    return await asyncio.get_running_loop().run_in_executor(
        None, run_load, url, token, seconds, concurrency
    )


# -- benchmarks ------------------------------------------------------------------------------
async def bench_get(site: Any, seconds: float) -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    bare = web.Application()
    bare.router.add_get("/", hello)
    runner = web.AppRunner(bare, access_log=None)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = tcp._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        hello_rps = await run_load_async(f"http://127.0.0.1:{port}/", None, seconds, 16)
        url = str(site.client.make_url("/api/v1/rooms/room-a"))
        room_rps = await run_load_async(url, site.tokens["staff1"], seconds, 16)
    finally:
        await runner.cleanup()
    print(
        f"GET room state: {room_rps:8.0f} req/s   bare hello: {hello_rps:8.0f} req/s   "
        f"ratio {room_rps / hello_rps:5.1%} (target >= 50 %)"
    )


async def bench_fanout(site: Any, clients: int, rounds: int) -> None:
    tokens = [(await site.pair("room-a", f"bench-{i}"))["token"] for i in range(clients)]
    sockets = [await site.client.ws_connect(f"/api/v1/ws?token={t}") for t in tokens]
    for ws in sockets:
        await ws.receive_json()  # hello
    latencies: list[float] = []
    try:
        for i in range(rounds):
            brightness = 10 + (i % 2) * 20
            arrivals: list[float] = []

            async def await_change(
                ws: aiohttp.ClientWebSocketResponse,
                b: int = brightness,
                arrivals: list[float] = arrivals,
            ) -> None:
                while True:
                    msg = await ws.receive_json()
                    data = msg.get("data", {})
                    if (
                        msg["type"] == "device_state"
                        and data.get("device_id") == "room-a/accent"
                        and data["state"].get("brightness") == b
                    ):
                        arrivals.append(time.time() - msg["ts"])
                        return

            waiters = asyncio.gather(*(await_change(ws) for ws in sockets))
            await site.zigbee.update("a_accent", state="ON", brightness=round(brightness * 2.54))
            async with asyncio.timeout(10):
                await waiters
            latencies.append(max(arrivals) * 1000)
    finally:
        for ws in sockets:
            await ws.close()
    print(
        f"WS fan-out to {clients} tablets, event to last client: p50 "
        f"{statistics.median(latencies):6.1f} ms  p99 {p99(latencies):6.1f} ms "
        f"(target <= 50 ms, {rounds} changes)"
    )


async def bench_scene(site: Any, rounds: int) -> None:
    tablet = await site.pair("room-a", "bench-scene")
    headers = {"Authorization": f"Bearer {tablet['token']}"}
    latencies: list[float] = []
    for i in range(rounds):
        scene = "relax" if i % 2 == 0 else "bright"
        started = time.perf_counter()
        resp = await site.client.post(
            f"/api/v1/rooms/room-a/scenes/{scene}/activate", headers=headers
        )
        body = await resp.json()
        latencies.append((time.perf_counter() - started) * 1000)
        if resp.status != 200:
            raise RuntimeError(json.dumps(body))
    print(
        f"Tablet scene -> every device confirmed: p50 {statistics.median(latencies):6.1f} ms  "
        f"p99 {p99(latencies):6.1f} ms (target <= 30 ms, {rounds} activations)"
    )
    # The same scenes straight on the core: what the API adds is the difference.
    direct: list[float] = []
    actor = Actor("tablet", tablet["tablet_id"])
    for i in range(rounds // 2):
        started = time.perf_counter()
        await site.core.activate_scene("room-a", "relax" if i % 2 == 0 else "bright", actor)
        direct.append((time.perf_counter() - started) * 1000)
    print(
        f"  same scenes on EdgeCore directly:      p50 {statistics.median(direct):6.1f} ms  "
        f"p99 {p99(direct):6.1f} ms (device confirmation round trips)"
    )


async def main(seconds: float, broker: Broker) -> None:
    print(f"broker {broker.host}:{broker.port}")
    with tempfile.TemporaryDirectory() as tmp:
        site = await start_api_site(broker, Path(tmp))
        try:
            await bench_get(site, seconds)
            await bench_fanout(site, 50, 100)
            await bench_scene(site, 200)
        finally:
            await stop_api_site(site)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument(
        "--broker", help="HOST:PORT of an existing broker (default: a private one, TCP_NODELAY)"
    )
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=16, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        print(asyncio.run(load(args.load, args.token, args.seconds, args.concurrency)))
    elif args.broker:
        host, _, port = args.broker.rpartition(":")
        asyncio.run(main(args.seconds, Broker(host, int(port))))
    else:
        with tempfile.TemporaryDirectory() as broker_dir:
            mosquitto = MosquittoProcess(Path(broker_dir))
            mosquitto.start()
            try:
                asyncio.run(main(args.seconds, mosquitto.broker))
            finally:
                mosquitto.stop()
