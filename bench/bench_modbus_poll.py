"""Modbus polling cost: N slaves behind one TCP gateway, polled at 1 Hz.

The gateway (drivers.modbus.simulator) runs in a separate process so only the
polling client is measured.  Prints the client's CPU use (% of one core, from
os.times, user and system, and per frame) and the poll-period jitter: p50/p99 of |period - interval|
over every successive pair of good polls of every slave.

    .venv/bin/python bench/bench_modbus_poll.py [--slaves 50] [--registers 20] [--seconds 30]

Target: CPU <= 10 % of one core for 50 slaves x 20 registers at 1 Hz.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import multiprocessing
import os
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers.modbus.config import ModbusDeviceConfig, ModbusTcpBusConfig
from drivers.modbus.devices import ModbusBuses
from drivers.modbus.simulator import ModbusSimulator, SimulatedUnit
from drivers.model import DeviceSnapshot


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(port: int, slaves: int, registers: int) -> None:
    """Child process: the gateway, until terminated."""
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

    async def main() -> None:
        units = {
            u: SimulatedUnit(holding={a: u * 100 + a for a in range(registers)})
            for u in range(1, slaves + 1)
        }
        sim = ModbusSimulator(units, port=port, keep_log=1000)
        await sim.start()
        await asyncio.Event().wait()

    asyncio.run(main())


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"gateway on port {port} did not open")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def poll(port: int, slaves: int, registers: int, seconds: float, interval: float) -> None:
    manager = ModbusBuses(
        [ModbusTcpBusConfig(type="tcp", id="gw", host="127.0.0.1", port=port, timeout_s=0.5)]
    )
    loop = asyncio.get_running_loop()
    seen: dict[str, list[float]] = {}
    measuring = False

    def on_change(snap: DeviceSnapshot) -> None:
        if measuring:
            seen.setdefault(snap.device_id, []).append(loop.time())

    for u in range(1, slaves + 1):
        cfg = ModbusDeviceConfig.model_validate(
            {
                "type": "modbus",
                "id": f"s{u}",
                "kind": "sensor",
                "bus": "gw",
                "unit": u,
                "poll_interval_s": interval,
                "registers": {
                    f"r{a}": {"table": "holding", "address": a} for a in range(registers)
                },
            }
        )
        # Every poll, not only changes: the jitter is of the poll period.
        manager.add_device(cfg, f"bench/s{u}").subscribe(on_change, every_report=True)
    await manager.start()
    try:
        await asyncio.sleep(2 * interval)  # connect and spread the pollers first
        measuring = True
        t0, wall0 = os.times(), time.perf_counter()
        frames0 = manager.buses["gw"].frames_sent
        await asyncio.sleep(seconds)
        t1, wall = os.times(), time.perf_counter() - wall0
        user, system = t1.user - t0.user, t1.system - t0.system
        cpu = user + system
        frames = manager.buses["gw"].frames_sent - frames0
        measuring = False
    finally:
        await manager.stop()

    deviations_ms = [
        abs((b - a) - interval) * 1000
        for stamps in seen.values()
        for a, b in itertools.pairwise(stamps)
    ]
    failed = sum(d.polls_failed for d in manager.devices.values())
    print(f"slaves={slaves} registers/slave={registers} interval={interval}s window={wall:.1f}s")
    print(f"requests on the wire: {frames} ({frames / wall:.1f}/s), failed polls: {failed}")
    print(
        f"client CPU: {cpu:.2f} s over {wall:.1f} s = {100 * cpu / wall:.1f} % of one core "
        f"({100 * system / wall:.1f} % system), {cpu / max(frames, 1) * 1e6:.0f} us per frame "
        f"({system / max(frames, 1) * 1e6:.0f} us system); load average {os.getloadavg()[0]:.2f}"
    )
    if deviations_ms:
        print(
            f"poll-period jitter |period - {interval}s|: "
            f"p50 {percentile(deviations_ms, 50):.2f} ms, "
            f"p99 {percentile(deviations_ms, 99):.2f} ms, "
            f"max {max(deviations_ms):.2f} ms, mean {statistics.fmean(deviations_ms):.2f} ms "
            f"({len(deviations_ms)} periods)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slaves", type=int, default=50)
    parser.add_argument("--registers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    port = free_port()
    ctx = multiprocessing.get_context("spawn")
    server = ctx.Process(
        target=serve, args=(port, args.slaves, args.registers), name="modbus-gateway", daemon=True
    )
    server.start()
    try:
        wait_port(port)
        asyncio.run(poll(port, args.slaves, args.registers, args.seconds, args.interval))
    finally:
        server.terminate()
        server.join(5)


if __name__ == "__main__":
    main()
