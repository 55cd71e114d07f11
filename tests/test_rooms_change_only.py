"""Change-only state end to end on real parts: a pymodbus TCP gateway polled by
the daemon, its SQLite edge.db, the MQTT bridge on Mosquitto.  A poll that reads
the same values stores, sends and publishes nothing; a change within the
field's deadband is kept as the current value but is not news; a change beyond
it is stored once, sent once and republished once.  History folds per minute.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from drivers.modbus.devices import ModbusDevice
from drivers.modbus.simulator import SpaThermostat, ThermostatGateway
from drivers.model import Availability, ClimateMode, ClimateState, DeviceKind, DeviceSnapshot
from edge.config import parse_config
from edge.demo.broker import free_port
from edge.events import Event
from edge.ops.retention import RetentionConfig, prune_once
from edge.service import EdgeService
from edge.store import Store
from tests.conftest import Broker
from tests.edge_site import wait_until

SITE = """\
[site]
id = "{tag}"
name = "Change only"
[storage]
data_dir = "{data}"
[mqtt]
host = "{host}"
port = {port}
zigbee2mqtt_base = "{tag}/z2m"
[[modbus_buses]]
id = "gw"
type = "tcp"
host = "127.0.0.1"
port = {modbus_port}
[[rooms]]
id = "spa"
name = "Spa"
  [[rooms.devices]]
  id = "pool"
  kind = "climate"
  type = "modbus"
  bus = "gw"
  unit = 1
  poll_interval_s = 0.05
  deadband = {{ current_c = 0.5 }}
  mode_values = {{ off = 0, heat = 1, cool = 2, auto = 3 }}
  [rooms.devices.registers]
  mode = {{ table = "holding", address = 0, dtype = "uint16" }}
  target_c = {{ table = "holding", address = 1, dtype = "int16", scale = 0.1, writable = true }}
  current_c = {{ table = "input", address = 0, dtype = "int16", scale = 0.1 }}
  humidity = {{ table = "input", address = 1, dtype = "uint16", scale = 0.1 }}
"""


class Retained:
    """Every payload the broker delivers on one topic, in order."""

    def __init__(self, broker: Broker, topic: str) -> None:
        self.client = aiomqtt.Client(broker.host, broker.port, identifier=uuid.uuid4().hex)
        self.topic = topic
        self.seen: list[dict[str, object]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Retained:
        await self.client.__aenter__()
        await self.client.subscribe(self.topic, qos=1)
        self._task = asyncio.create_task(self._collect(), name="retained-watch")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.client.publish(self.topic, b"", qos=1, retain=True)  # leave nothing behind
        await self.client.__aexit__(None, None, None)

    async def _collect(self) -> None:
        async for message in self.client.messages:
            if isinstance(message.payload, bytes) and message.payload:
                self.seen.append(json.loads(message.payload))

    def current_c(self, index: int) -> object:
        devices = self.seen[index]["devices"]
        assert isinstance(devices, dict)
        return devices["pool"]["state"]["current_c"]


@pytest.fixture
async def gateway() -> AsyncIterator[ThermostatGateway]:
    # No model ticks: the water temperature moves only when the test says so.
    gw = ThermostatGateway(port=free_port(), units=[1], tick_s=3600, current_c=30.0)
    await gw.start()
    yield gw
    await gw.stop()


def set_water(gw: ThermostatGateway, celsius: float) -> None:
    unit = gw.thermostat(1)
    unit.current_c = celsius
    unit.tables["input"][SpaThermostat.CURRENT] = round(celsius * 10)


async def history_rows(service: EdgeService) -> int:
    rows = await service.store.history("spa/pool", limit=1000)
    return len(rows)


async def test_unchanged_polls_store_send_and_publish_nothing(
    gateway: ThermostatGateway, mqtt_broker: Broker, tmp_path: Path
) -> None:
    tag = f"co-{uuid.uuid4().hex[:8]}"
    cfg = parse_config(
        SITE.format(
            tag=tag,
            data=tmp_path,
            host=mqtt_broker.host,
            port=mqtt_broker.port,
            modbus_port=gateway.port,
        )
    )
    service = EdgeService(cfg, with_api=False)
    events: list[Event] = []
    service.events.tap(lambda e: events.append(e) if e.type == "device_state" else None)
    core = await service.start()
    device = service.devices["spa/pool"]
    assert isinstance(device, ModbusDevice)
    topic = f"coresync/{tag}/rooms/spa/state"
    try:
        async with Retained(mqtt_broker, topic) as retained:
            await wait_until(lambda: device.snapshot().availability is Availability.ONLINE)
            await wait_until(lambda: bool(retained.seen) and retained.current_c(-1) == 30.0)
            await wait_until(lambda: len(events) == 1 and service._pending == {})
            stored = await history_rows(service)
            assert stored == 1
            published = len(retained.seen)

            # 20 polls of the same values: nothing new anywhere.
            start = device.polls_ok
            await wait_until(lambda: device.polls_ok >= start + 20)
            assert len(events) == 1
            assert await history_rows(service) == stored

            # Within the deadband: the current value moves, nobody is told.
            set_water(gateway, 30.3)
            await wait_until(
                lambda: (
                    isinstance(s := device.snapshot().state, ClimateState) and s.current_c == 30.3
                )
            )
            start = device.polls_ok
            await wait_until(lambda: device.polls_ok >= start + 5)
            assert len(events) == 1

            # Beyond it (0.5 from the 30.0 last told): stored, sent, published once.
            set_water(gateway, 30.5)
            await wait_until(lambda: len(retained.seen) > published)
            assert retained.current_c(-1) == 30.5
            start = device.polls_ok
            await wait_until(lambda: device.polls_ok >= start + 10)
            assert len(events) == 2
            assert events[1].data["state"]["current_c"] == 30.5
            await wait_until(lambda: service._pending == {})
            assert await history_rows(service) == stored + 1
            # The retained copy was republished for the change alone: the
            # state message for 30.5 is the last one, and it came once.
            assert [retained.current_c(i) for i in range(published, len(retained.seen))] == [30.5]
            # Values are what the device meant, not binary float noise.
            assert core.views.encoded("spa", "staff").count(b'"current_c":30.5') == 1
    finally:
        await service.stop()


async def test_history_is_raw_for_the_hour_then_per_minute_for_days(tmp_path: Path) -> None:
    store = Store(tmp_path / "edge.db")
    await store.open()
    try:
        for current in (21.0, 21.4, 22.0):
            await store.save_state(
                DeviceSnapshot(
                    "spa/pool",
                    DeviceKind.CLIMATE,
                    Availability.ONLINE,
                    None,
                    ClimateState(mode=ClimateMode.HEAT, target_c=24.0, current_c=current),
                )
            )
        now = time.time()
        cfg = RetentionConfig(state_history_raw_hours=1, state_history_days=30)
        # Within the hour: nothing folded.
        kept = await prune_once(store, tmp_path, cfg, now + 30 * 60)
        assert kept["state_history"] == 0 and len(await store.history("spa/pool")) == 3
        folded = await prune_once(store, tmp_path, cfg, now + 2 * 3600)
        assert folded["state_history"] == 3
        assert await store.history("spa/pool") == []
        minutes = {r["field"]: r for r in await store.history_minutes("spa/pool")}
        temp = minutes["current_c"]
        assert (temp["min"], temp["max"], temp["samples"], temp["last"]) == (21.0, 22.0, 3, 22.0)
        assert temp["mean"] == pytest.approx(21.466667)
        assert minutes["mode"]["last"] == "heat" and minutes["mode"]["mean"] is None
        assert minutes["availability"]["last"] == "online"
        # A later pass in the same minute merges into the same row.
        await store.save_state(
            DeviceSnapshot(
                "spa/pool",
                DeviceKind.CLIMATE,
                Availability.ONLINE,
                None,
                ClimateState(mode=ClimateMode.HEAT, target_c=24.0, current_c=20.0),
            )
        )
        await prune_once(store, tmp_path, cfg, now + 2 * 3600)
        rows = await store.history_minutes("spa/pool")
        merged = {r["minute"]: r for r in rows if r["field"] == "current_c"}
        total = sum(r["samples"] for r in merged.values())
        assert total == 4 and min(r["min"] for r in merged.values()) == 20.0
        # After the retention in days: gone.
        gone = await prune_once(store, tmp_path, cfg, now + 31 * 86_400)
        assert gone["state_history_minute"] == len(rows)
        assert await store.history_minutes("spa/pool") == []
    finally:
        await store.close()
