"""Stopping the MQTT connection at any moment of its connect ends it.

Regression: on Python 3.11 aiomqtt's connect (asyncio.wait_for) could swallow
a cancel that landed as the CONNACK arrived, leaving the daemon running after
SIGINT.
"""

from __future__ import annotations

import asyncio
import random
import uuid

from drivers.mqtt.config import MqttBrokerConfig
from drivers.mqtt.connection import MqttConnection
from tests.conftest import Broker


async def test_cancel_at_any_point_of_connect_stops(mqtt_broker: Broker) -> None:
    rng = random.Random(3)
    cfg = MqttBrokerConfig(host=mqtt_broker.host, port=mqtt_broker.port)
    for i in range(40):
        conn = MqttConnection(cfg, site_id=f"cancel-{uuid.uuid4().hex[:6]}")
        conn.subscribe(f"cancel-test/{i}/#", lambda topic, payload: None)
        task = asyncio.create_task(conn.run(), name=f"mqtt-run-{i}")
        await asyncio.sleep(rng.uniform(0, 0.02))
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5)
        assert task in done, f"run() ignored its cancellation (round {i})"
        assert task.cancelled()
