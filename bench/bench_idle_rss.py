"""Daemon RSS at idle on the demo site, without vision (target <= 80 MB).

The simulated devices (Zigbee2MQTT-style MQTT devices, the Modbus thermostat
gateway) run in this process; the daemon runs alone as
``coresync-edge run --config <demo site>`` in a child process, so its RSS is
the daemon's own.

    .venv/bin/python bench/bench_idle_rss.py [--seconds 20] [--broker HOST:PORT]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from drivers.modbus.simulator import ThermostatGateway  # noqa: E402
from drivers.mqtt.simulator import ZigbeeSimulator  # noqa: E402
from edge.demo import demo_site_text  # noqa: E402
from edge.demo.broker import free_port  # noqa: E402
from edge.demo.runner import demo_config, zigbee_devices  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def main(seconds: float, host: str, port: int) -> None:
    modbus_port = free_port()
    gateway = ThermostatGateway(host="127.0.0.1", port=modbus_port, units=[1, 2])
    await gateway.start()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = demo_config(host, port, modbus_port, Path(tmp))
        assert cfg.mqtt is not None
        sim = ZigbeeSimulator(
            host, port, base=cfg.mqtt.zigbee2mqtt_base, devices=zigbee_devices(cfg)
        )
        await sim.start()
        text = demo_site_text()
        data = tomllib.loads(text)
        # Rewrite the demo TOML with the live broker and gateway for `run --config`.
        site = Path(tmp) / "site.toml"
        site.write_text(
            text.replace("port = 1883", f"port = {port}")
            .replace('host = "127.0.0.1"\nport = 5020', f'host = "127.0.0.1"\nport = {modbus_port}')
            .replace('[mqtt]\nhost = "127.0.0.1"', f'[mqtt]\nhost = "{host}"')
        )
        assert data["site"]["id"] == cfg.site.id
        proc = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "coresync-edge"),
            "--log-level",
            "WARNING",
            "run",
            "--config",
            str(site),
            "--data-dir",
            tmp,
        )
        try:
            samples = []
            t0 = time.monotonic()
            while time.monotonic() - t0 < seconds:
                await asyncio.sleep(1)
                samples.append(rss_mb(proc.pid))
            print(
                f"daemon idle on the demo site ({len(cfg.rooms)} rooms, "
                f"{sum(len(r.devices) for r in cfg.rooms)} devices), {seconds:g} s:"
            )
            print(
                f"  RSS after start {samples[0]:.1f} MB, at end {samples[-1]:.1f} MB, "
                f"max {max(samples):.1f} MB"
            )
        finally:
            proc.terminate()
            await proc.wait()
            await sim.stop()
            await gateway.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--broker", default="127.0.0.1:1883")
    args = ap.parse_args()
    h, _, p = args.broker.rpartition(":")
    asyncio.run(main(args.seconds, h, int(p)))
