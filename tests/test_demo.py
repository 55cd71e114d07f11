"""The README's first command: the demo site runs with no hardware."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt

from drivers.model import Availability
from edge.core import Actor
from edge.demo.broker import free_port
from edge.demo.runner import DemoSite
from tests.conftest import wait_port


async def test_demo_with_embedded_broker(tmp_path: Path) -> None:
    site = DemoSite(tmp_path, broker="embedded", http_port=0)
    service = await site.start()
    try:
        assert site.embedded is not None
        core = service.core
        assert core is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while any(
            d.snapshot().availability is not Availability.ONLINE for _, d in core.all_devices()
        ):
            assert loop.time() < deadline, "demo devices did not come online"
            await asyncio.sleep(0.1)
        result = await core.activate_scene("treatment-1", "relax", Actor("staff", "demo-test"))
        assert result.ok, result.as_dict()
        # The room state is on the (embedded) broker, retained.
        async with aiomqtt.Client(site.embedded.host, site.embedded.port) as client:
            await client.subscribe("coresync/demo-spa/rooms/treatment-1/state")
            async with asyncio.timeout(10):
                async for msg in client.messages:
                    # amqtt also hands this subscriber some messages of other
                    # topics; a client must check the topic it got.
                    if str(msg.topic) != "coresync/demo-spa/rooms/treatment-1/state":
                        continue
                    state = json.loads(msg.payload)  # type: ignore[arg-type]
                    if state["devices"]["ceiling"]["state"]["brightness"] == 25:
                        break
    finally:
        await site.stop()


def test_demo_command_starts_and_stops_cleanly(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "coresync-edge"
    proc = subprocess.Popen(
        [str(exe), "demo", "--data-dir", str(tmp_path), "--http-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "Press Ctrl-C to stop." in line:
            break
    else:
        raise AssertionError("demo did not start:\n" + "".join(lines))
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, rest
    assert "edge service stopped" in rest
    assert "Traceback" not in "".join(lines) + rest
    assert (tmp_path / "edge.db").exists()


def test_two_demos_on_one_broker_do_not_knock_each_other_off(tmp_path: Path) -> None:
    """Two clients with one id: the broker closes the older connection the
    moment the newer one connects, and says so in its log."""
    broker_log = tmp_path / "mosquitto.log"
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "log_dest stderr\nlog_type all\n"
    )
    exe = Path(sys.executable).parent / "coresync-edge"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = []
    with broker_log.open("w") as log_file:
        broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=log_file)
    try:
        wait_port("127.0.0.1", port)
        for name in ("a", "b"):
            procs.append(
                subprocess.Popen(
                    [str(exe), "demo", "--data-dir", str(tmp_path / name), "--http-port", "0",
                     "--broker", f"127.0.0.1:{port}"],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    env=env,
                )
            )  # fmt: skip
        started: list[str] = []
        for proc in procs:
            assert proc.stdout is not None
            lines = []
            for line in proc.stdout:
                lines.append(line)
                if "Press Ctrl-C to stop." in line:
                    break
            started.append("".join(lines))
        # Both demos are connected. A marker client connects last: once the
        # broker has logged it, it has logged every connection before it.
        marker = f"marker-{os.getpid()}"
        subprocess.run(
            ["mosquitto_pub", "-p", str(port), "-i", marker, "-t", "nothing", "-m", "x"],
            check=True,
        )
        deadline = time.monotonic() + 30
        while f"as {marker}" not in broker_log.read_text():
            assert time.monotonic() < deadline, broker_log.read_text()
            time.sleep(0.05)
        log_text = broker_log.read_text()
        assert "closing old connection" not in log_text, log_text
        assert log_text.count("New client connected") >= 3, log_text
    finally:
        outputs = []
        for proc in procs:
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=30)
            outputs.append(out)
        broker.terminate()
        broker.wait(10)
    outputs = [head + tail for head, tail in zip(started, outputs, strict=True)]
    for out in outputs:
        assert "MQTT reconnect" not in out, out  # logged only after a lost connection
        assert "Traceback" not in out
