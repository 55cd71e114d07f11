"""On every (re)connect the daemon sends ONE SUBSCRIBE carrying all its topic
filters (as Home Assistant does), counted in a real Mosquitto's own log."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

from drivers.mqtt.config import MqttBrokerConfig
from drivers.mqtt.connection import MqttConnection
from tests.conftest import MosquittoProcess
from tests.edge_site import wait_until


def _subscribes(log: Path, client_id: str) -> list[list[str]]:
    """The filters of each SUBSCRIBE the broker received from ``client_id``."""
    packets: list[list[str]] = []
    current: list[str] | None = None
    for line in log.read_text(errors="replace").splitlines():
        if line.endswith(f"Received SUBSCRIBE from {client_id}"):
            current = []
            packets.append(current)
        elif current is not None and (m := re.match(r"^\d+: \t(\S+) \(QoS \d\)$", line)):
            current.append(m.group(1))
        elif line.endswith(f"Sending SUBACK to {client_id}"):
            current = None  # the packet's filters are all listed before its SUBACK
    return packets


async def test_one_subscribe_per_connect_with_every_filter(tmp_path: Path) -> None:
    broker = MosquittoProcess(tmp_path)
    log = tmp_path / "mosquitto.log"
    with broker.conf.open("a") as conf:  # the broker says what it received
        # As root (not "mosquitto"): tmp_path is not readable to other users.
        conf.write(f"user root\nlog_dest file {log}\nlog_type all\n")
    broker.start()
    client_id = f"batch-{uuid.uuid4().hex[:8]}"
    cfg = MqttBrokerConfig(host=broker.host, port=broker.port, reconnect_max_s=0.5)
    conn = MqttConnection(cfg, site_id="batch", client_id=client_id)
    filters = [f"batch/{i}/state" for i in range(8)] + ["batch/+/availability", "batch/#"]
    for topic_filter in filters:
        conn.subscribe(topic_filter, lambda topic, payload: None)
    await conn.start()
    try:
        await conn.connected()

        async def packets() -> list[list[str]]:
            return await asyncio.to_thread(_subscribes, log, client_id)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while len(seen := await packets()) < 1:
            assert loop.time() < deadline, "the broker logged no SUBSCRIBE"
            await asyncio.sleep(0.05)
        assert seen == [filters], seen
        # A broker restart: the reconnect subscribes everything again, in one packet.
        await asyncio.to_thread(broker.stop)
        await conn.disconnected()
        await asyncio.to_thread(broker.start)
        await wait_until(lambda: conn.connects == 2, 20)
        deadline = loop.time() + 10
        while len(seen := await packets()) < 2:
            assert loop.time() < deadline, "no SUBSCRIBE after the reconnect"
            await asyncio.sleep(0.05)
        assert seen == [filters, filters], seen
    finally:
        await conn.stop()
        await asyncio.to_thread(broker.stop)
