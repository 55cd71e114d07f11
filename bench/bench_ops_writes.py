"""Sustained writes under the durability rule, and cold start to READY=1.

- committed shop orders/s (edge.shop on SQLite), synchronous FULL vs NORMAL;
- device-state writes/s (edge.store.Store), NORMAL (the rule) vs FULL;
- cold start: from process start to the READY=1 datagram of
  ``coresync-edge run`` on the demo site (simulators in this process, the
  daemon alone in a child, NOTIFY_SOCKET pointing at our socket).

    .venv/bin/python bench/bench_ops_writes.py [--seconds 5] [--broker HOST:PORT]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from ops_write_load import prepare_shop  # noqa: E402

from drivers.modbus.simulator import ThermostatGateway  # noqa: E402
from drivers.model import Availability, DeviceKind, DeviceSnapshot, LightState  # noqa: E402
from drivers.mqtt.simulator import ZigbeeSimulator  # noqa: E402
from edge.demo import demo_site_text  # noqa: E402
from edge.demo.broker import free_port  # noqa: E402
from edge.demo.runner import demo_config, zigbee_devices  # noqa: E402
from edge.shop import Shop, ShopConfig  # noqa: E402
from edge.shop.db import SqliteDatabase, SqliteSync  # noqa: E402
from edge.store import Store  # noqa: E402


def orders_per_s(tmp: Path, sync: SqliteSync, seconds: float) -> float:
    shop = Shop(SqliteDatabase(str(tmp / f"shop-{sync}.db"), synchronous=sync), ShopConfig("b"))
    member = prepare_shop(shop)
    order = {"items": [{"product": "serum", "quantity": 1}]}
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        shop.create_order(member, order)
        n += 1
    elapsed = time.perf_counter() - t0
    shop.db.close()
    return n / elapsed


async def states_per_s(tmp: Path, sync: str, seconds: float) -> float:
    store = Store(tmp / f"edge-{sync}.db")
    await store.open()
    await store.call(lambda c: c.execute(f"PRAGMA synchronous={sync}"))
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += 1
        await store.save_state(
            DeviceSnapshot(
                f"room/d{n % 12}",
                DeviceKind.LIGHT,
                Availability.ONLINE,
                datetime.now(UTC),
                LightState(on=True, brightness=n % 101),
            )
        )
    elapsed = time.perf_counter() - t0
    await store.close()
    return n / elapsed


async def cold_start(host: str, port: int, runs: int) -> list[float]:
    modbus_port = free_port()
    gateway = ThermostatGateway(host="127.0.0.1", port=modbus_port, units=[1, 2])
    await gateway.start()
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = demo_config(host, port, modbus_port, Path(tmp))
        assert cfg.mqtt is not None
        sim = ZigbeeSimulator(
            host, port, base=cfg.mqtt.zigbee2mqtt_base, devices=zigbee_devices(cfg)
        )
        await sim.start()
        site = Path(tmp) / "site.toml"
        site.write_text(
            demo_site_text()
            .replace("port = 1883", f"port = {port}")
            .replace('host = "127.0.0.1"\nport = 5020', f'host = "127.0.0.1"\nport = {modbus_port}')
            .replace('[mqtt]\nhost = "127.0.0.1"', f'[mqtt]\nhost = "{host}"')
        )
        sock_path = Path(tmp) / "notify.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(sock_path))
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            for i in range(runs):
                data_dir = Path(tmp) / f"data-{i}"
                t0 = time.perf_counter()
                proc = await asyncio.create_subprocess_exec(
                    str(Path(sys.executable).parent / "coresync-edge"),
                    "--log-level", "WARNING", "run", "--config", str(site),
                    "--data-dir", str(data_dir),
                    env={**os.environ, "NOTIFY_SOCKET": str(sock_path)},
                )  # fmt: skip
                try:
                    while True:
                        msg = await asyncio.wait_for(loop.sock_recv(sock, 4096), 60)
                        if b"READY=1" in msg:
                            times.append(time.perf_counter() - t0)
                            break
                finally:
                    proc.terminate()
                    await proc.wait()
        finally:
            sock.close()
            await sim.stop()
            await gateway.stop()
    return times


async def main(seconds: float, host: str, port: int) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        print(f"sustained writes, {seconds:g} s each, on {tmp} (filesystem of /tmp):")
        for sync in ("FULL", "NORMAL"):
            rate = await asyncio.to_thread(orders_per_s, tmp, sync, seconds)  # type: ignore[arg-type]
            rule = " (the rule)" if sync == "FULL" else ""
            print(f"  shop orders committed, synchronous={sync}{rule}: {rate:,.0f}/s")
        for sync in ("NORMAL", "FULL"):
            rate = await states_per_s(tmp, sync, seconds)
            rule = " (the rule)" if sync == "NORMAL" else ""
            print(f"  device state writes, synchronous={sync}{rule}: {rate:,.0f}/s")
    times = await cold_start(host, port, 3)
    print(
        f"cold start to READY=1 (demo site, `coresync-edge run`), {len(times)} runs: "
        + ", ".join(f"{t:.2f} s" for t in times)
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--broker", default="127.0.0.1:1883")
    args = ap.parse_args()
    h, _, p = args.broker.rpartition(":")
    asyncio.run(main(args.seconds, h, int(p)))
