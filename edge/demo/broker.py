"""Pick the demo's MQTT broker: the configured one, a local Mosquitto, or an
embedded broker on loopback (anonymous, loopback only).

The embedded broker listens on 1883 when that port is free (so the README's
``mosquitto_sub``/``mosquitto_pub`` lines work as written), else on a free
port that the banner names.  It is a real ``mosquitto`` process when the
binary is installed (Debian: ``mosquitto``), else amqtt (the ``demo`` extra)
with its retained-message replay fixed: amqtt replays, to every client that
connects, the retained messages of *every* filter any client subscribed to;
a subscriber must get only those matching its own filters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MQTT_PORT = 1883
MOSQUITTO_PATHS = ("mosquitto", "/usr/sbin/mosquitto")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


async def broker_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def mosquitto_binary() -> str | None:
    for name in MOSQUITTO_PATHS:
        found = shutil.which(name)
        if found:
            return found
    return None


class EmbeddedBroker:
    """A loopback-only anonymous broker for the demo: mosquitto if installed, else amqtt."""

    def __init__(self, port: int | None = None, *, prefer_mosquitto: bool = True) -> None:
        self.host = "127.0.0.1"
        self.port = port or (MQTT_PORT if port_is_free(MQTT_PORT) else free_port())
        self._prefer_mosquitto = prefer_mosquitto
        self.kind = "amqtt"  # or "mosquitto", known once started
        self._process: asyncio.subprocess.Process | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._broker: Any = None

    async def start(self) -> None:
        exe = await asyncio.to_thread(mosquitto_binary) if self._prefer_mosquitto else None
        if exe is not None:
            self.kind = "mosquitto"
            await self._start_mosquitto(exe)
        else:
            await self._start_amqtt()
        log.info("embedded MQTT broker (%s) on %s:%d", self.kind, self.host, self.port)

    async def _start_mosquitto(self, exe: str) -> None:
        self._workdir = await asyncio.to_thread(
            tempfile.TemporaryDirectory, prefix="coresync-demo-mqtt-"
        )
        conf = Path(self._workdir.name) / "mosquitto.conf"
        # Without set_tcp_nodelay Mosquitto holds small packets (~40 ms each).
        text = (
            f"listener {self.port} {self.host}\nallow_anonymous true\n"
            "persistence false\nset_tcp_nodelay true\n"
        )
        await asyncio.to_thread(conf.write_text, text)
        self._process = await asyncio.create_subprocess_exec(
            exe,
            "-c",
            str(conf),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not await broker_answers(self.host, self.port, 0.2):
            if self._process.returncode is not None or loop.time() > deadline:
                await self.stop()
                raise OSError(f"mosquitto did not start on {self.host}:{self.port}")
            await asyncio.sleep(0.05)

    async def _start_amqtt(self) -> None:
        # A heavy import, only when needed, and off the loop (it reads from disk).
        broker_class = await asyncio.to_thread(_fixed_amqtt_broker)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
        self._broker = broker_class(config)
        await self._broker.start()

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
                await process.wait()
        workdir, self._workdir = self._workdir, None
        if workdir is not None:
            await asyncio.to_thread(workdir.cleanup)
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()


def _fixed_amqtt_broker() -> type[Any]:
    try:
        from amqtt.broker import Broker
    except ImportError as exc:
        raise RuntimeError(
            "no MQTT broker answers on 127.0.0.1:1883 and none can be embedded: install "
            "Mosquitto (apt-get install mosquitto) or amqtt, or pass --broker HOST:PORT"
        ) from exc

    class RetainedPerSubscriber(Broker):  # type: ignore[misc]
        """amqtt's Broker, replaying retained messages only for filters the
        receiving session itself subscribed to."""

        async def _publish_retained_messages_for_subscription(
            self, subscription: tuple[str, int], session: Any
        ) -> None:
            holders = self._subscriptions.get(subscription[0], [])
            if not any(held is session for held, _qos in holders):
                return  # another client's filter (amqtt replays all on connect)
            await super()._publish_retained_messages_for_subscription(subscription, session)

    return RetainedPerSubscriber
