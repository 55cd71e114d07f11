"""The README's first command: the demo site runs with no hardware."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt

from drivers.model import Availability
from edge.demo.broker import EmbeddedBroker, free_port, mosquitto_binary
from edge.demo.runner import DemoSite, mqtt_banner, mqtt_commands
from tests.conftest import wait_port
from tests.parts import missing


async def test_demo_with_embedded_broker(tmp_path: Path) -> None:
    site = DemoSite(tmp_path, broker="embedded", http_port=0)
    service = await site.start()
    try:
        assert site.embedded is not None
        installed = await asyncio.to_thread(mosquitto_binary)
        assert site.embedded.kind == ("mosquitto" if installed else "amqtt")
        core = service.core
        assert core is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while any(
            d.snapshot().availability is not Availability.ONLINE for _, d in core.all_devices()
        ):
            assert loop.time() < deadline, "demo devices did not come online"
            await asyncio.sleep(0.1)
        # The banner's own lines, run as printed, against the broker in use.
        banner = "\n".join(mqtt_banner(site))
        watch, scene = mqtt_commands(site)
        assert watch in banner and scene in banner
        assert f"-p {site.embedded.port}" in watch or site.embedded.port == 1883
        if await asyncio.to_thread(shutil.which, "mosquitto_sub") is None:
            missing("mosquitto-clients", "the demo banner's mosquitto_sub/mosquitto_pub lines")
        watcher = await asyncio.create_subprocess_shell(
            f"{watch} wait",
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            assert watcher.stdout is not None
            first = await asyncio.wait_for(watcher.stdout.readline(), 10)  # retained states
            assert first.startswith(b"coresync/demo-spa/rooms/"), first
            ran = await asyncio.create_subprocess_shell(scene)
            assert await ran.wait() == 0
            async with asyncio.timeout(10):
                while True:
                    line = (await watcher.stdout.readline()).decode()
                    topic, _, payload = line.partition(" ")
                    assert topic.startswith("coresync/demo-spa/rooms/"), line
                    if topic.endswith("treatment-1/state"):
                        state = json.loads(payload)
                        if state["devices"]["ceiling"]["state"]["brightness"] == 25:
                            break
        finally:
            os.killpg(watcher.pid, signal.SIGTERM)
            await watcher.wait()
        # A subscriber gets the retained messages of its own filters only.
        async with aiomqtt.Client(site.embedded.host, site.embedded.port) as client:
            await client.subscribe("nothing/matches/this")
            await client.subscribe("coresync/demo-spa/rooms/treatment-1/state")
            async with asyncio.timeout(10):
                async for msg in client.messages:
                    assert str(msg.topic) == "coresync/demo-spa/rooms/treatment-1/state"
                    break
    finally:
        await site.stop()


async def test_the_amqtt_fallback_delivers_only_matching_retained_messages() -> None:
    broker = EmbeddedBroker(free_port(), prefer_mosquitto=False)
    await broker.start()
    try:
        async with aiomqtt.Client(broker.host, broker.port) as publisher:
            # Someone subscribed to every z2m topic (as the demo's daemon is)...
            await publisher.subscribe("z2m/#")
            for name in ("lamp", "lock", "heater"):
                await publisher.publish(f"z2m/{name}", b"{}", qos=1, retain=True)
            await publisher.publish("rooms/a/state", b"a", qos=1, retain=True)
            # ...a newcomer subscribing elsewhere gets none of theirs.
            async with aiomqtt.Client(broker.host, broker.port) as newcomer:
                await newcomer.subscribe("nothing/matches/this")
                await newcomer.subscribe("rooms/+/state")
                async with asyncio.timeout(10):
                    async for msg in newcomer.messages:
                        assert (str(msg.topic), msg.payload) == ("rooms/a/state", b"a")
                        break
    finally:
        await broker.stop()


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


def test_the_banner_on_the_default_port_prints_the_readme_lines(tmp_path: Path) -> None:
    """The README's MQTT example is what the banner prints when the broker
    (embedded or not) is on 127.0.0.1:1883: the same lines, verbatim."""
    site = DemoSite(tmp_path, http_port=None)
    site.mqtt_host, site.mqtt_port = "127.0.0.1", 1883
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for line in mqtt_commands(site):
        assert f"\n{line}\n" in readme, line
