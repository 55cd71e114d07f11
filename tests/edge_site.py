"""A daemon on real parts for tests: the Zigbee2MQTT simulator for the
config's MQTT devices on a real broker, an EdgeService on a real SQLite data
dir, started and waited on until every device is online."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from drivers.model import Availability
from drivers.mqtt.simulator import ZigbeeSimulator
from edge.config import SiteConfig
from edge.core import EdgeCore
from edge.demo.runner import zigbee_devices
from edge.service import EdgeService
from tests.conftest import Broker


async def wait_until(cond: Callable[[], bool], within_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def start_edge(
    cfg: SiteConfig, broker: Broker, data_dir: Path
) -> tuple[ZigbeeSimulator, EdgeService, EdgeCore]:
    """Simulated devices, then the daemon (without its API), all devices online."""
    assert cfg.mqtt is not None
    zigbee = ZigbeeSimulator(
        broker.host, broker.port, base=cfg.mqtt.zigbee2mqtt_base, devices=zigbee_devices(cfg)
    )
    await zigbee.start()
    service = EdgeService(cfg, data_dir=data_dir, with_api=False)
    core = await service.start()
    await wait_until(
        lambda: all(d.snapshot().availability is Availability.ONLINE for _, d in core.all_devices())
    )
    return zigbee, service, core
