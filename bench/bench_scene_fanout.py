"""Scene fan-out through a real Mosquitto: a 10-device scene, activated N times.

Two figures per activation, alternating between two scenes so every
activation really changes every device:

- broker ack: from the start of the fan-out (limits checked, all ten
  commands published concurrently at QoS 1) until the broker has
  acknowledged every command (PUBACK);
- state seen back: from ``EdgeCore.activate_scene`` until it returns, i.e.
  every simulated device has published its new state and the daemon has
  seen it (and logged the ten commands in SQLite).

Targets (issue #2): ack p99 <= 20 ms, state p99 <= 50 ms on a 2-core machine.

    .venv/bin/python bench/bench_scene_fanout.py [--activations 500] [--broker HOST:PORT]

Without --broker it starts its own Mosquitto on a free port with
``set_tcp_nodelay true``, as docs/mqtt.md recommends for a site broker.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers.mqtt.devices import MqttDevice
from drivers.mqtt.simulator import ZigbeeSimulator
from edge.config import parse_config
from edge.core import Actor
from edge.demo.runner import zigbee_devices
from edge.service import EdgeService

N_DEVICES = 10


def site_toml(host: str, port: int, base: str) -> str:
    lines = [
        '[site]\nid = "bench"\nname = "Bench"\n',
        f'[mqtt]\nhost = "{host}"\nport = {port}\nzigbee2mqtt_base = "{base}"\n',
        '[[rooms]]\nid = "hall"\nname = "Hall"\n',
    ]
    for i in range(N_DEVICES):
        lines.append(
            f'[[rooms.devices]]\nid = "l{i}"\nkind = "light"\ntype = "zigbee2mqtt"\n'
            f'friendly_name = "bench_l{i}"\n'
        )
    for scene, brightness, kelvin in (("a", 30, 2700), ("b", 70, 4000)):
        lines.append(f'[[rooms.scenes]]\nid = "{scene}"\nname = "{scene}"\n')
        for i in range(N_DEVICES):
            lines.append(
                f"devices.l{i} = {{ on = true, brightness = {brightness + i}, "
                f"color_temp_k = {kelvin} }}\n"
            )
    return "\n".join(lines)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def main(activations: int, host: str, port: int) -> None:
    base = f"bench-z2m-{int(time.time())}"
    cfg = parse_config(site_toml(host, port, base))
    sim = ZigbeeSimulator(host, port, base=base, devices=zigbee_devices(cfg))
    await sim.start()
    with tempfile.TemporaryDirectory() as tmp:
        service = EdgeService(cfg, data_dir=Path(tmp), with_api=False)
        core = await service.start()
        try:
            room = core.room("hall")
            while any(d.snapshot().last_seen is None for d in room.devices.values()):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            actor = Actor("system", "bench")
            acks: list[float] = []
            states: list[float] = []
            for n in range(activations):
                scene = room.config.scenes[n % 2]
                # broker ack of the whole fan-out
                t0 = time.perf_counter()
                planned = [
                    core.prepare("hall", dev_id, action.model_dump(exclude_none=True))
                    for dev_id, action in scene.devices.items()
                ]
                await asyncio.gather(
                    *(
                        dev.publish_command(cmd)
                        for dev, cmd in planned
                        if isinstance(dev, MqttDevice)
                    )
                )
                acks.append((time.perf_counter() - t0) * 1000)
                # wait for the devices to settle, then flip to the other scene
                # through the core and time it end to end
                await asyncio.sleep(0.01)
                other = room.config.scenes[(n + 1) % 2]
                t1 = time.perf_counter()
                result = await core.activate_scene("hall", other.id, actor)
                states.append((time.perf_counter() - t1) * 1000)
                if not result.ok:
                    print("failed:", result.as_dict())
        finally:
            await service.stop()
            await sim.stop()
    print(f"scene fan-out, {N_DEVICES} devices, {activations} activations, broker {host}:{port}")
    for name, values in (("broker ack", acks), ("state seen back", states)):
        print(
            f"  {name:16s} p50 {statistics.median(values):6.2f} ms   "
            f"p99 {pct(values, 99):6.2f} ms   max {max(values):6.2f} ms"
        )


def private_mosquitto(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    from edge.demo.broker import free_port

    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "set_tcp_nodelay true\n"
    )
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc, port


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--activations", type=int, default=500)
    ap.add_argument("--broker", help="HOST:PORT of an existing broker")
    args = ap.parse_args()
    if args.broker:
        h, _, p = args.broker.rpartition(":")
        asyncio.run(main(args.activations, h, int(p)))
    else:
        with tempfile.TemporaryDirectory() as d:
            broker, bport = private_mosquitto(Path(d))
            try:
                asyncio.run(main(args.activations, "127.0.0.1", bport))
            finally:
                broker.terminate()
                broker.wait()
