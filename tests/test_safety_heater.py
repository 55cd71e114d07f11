"""Heater safety that survives the daemon: a real ``coresync-edge run``
process, a real Mosquitto, the Zigbee2MQTT simulator for the heater.

The heat command goes through the daemon's own MQTT scene topic; time is
measured from that command to the simulated heater reporting "off".  The
bounds (the limit +- 2 s, with slack for a loaded machine) are correctness
bounds: "off at the limit, not a restart's worth later".
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from drivers.model import DeviceKind
from drivers.mqtt.simulator import SimulatedZigbeeDevice, ZigbeeSimulator
from edge.demo.broker import free_port
from edge.mqtt_bridge import scene_set_topic
from tests.conftest import Broker
from tests.edge_process import EdgeProcess

LIMIT_S = 10.0  # auto_off_minutes = 1/6 (short: the whole CI run must stay under 15 min)
EARLY_S = 2.0
LATE_S = 2.0 + 2.0  # the 2 s, plus slack for a loaded 2-core machine

SITE = """\
[site]
id = "{site}"
name = "Heater safety test"

[api]
host = "127.0.0.1"
port = {api_port}
zeroconf = false
argon2_time_cost = 1
argon2_memory_kib = 64

[mqtt]
host = "{host}"
port = {port}
zigbee2mqtt_base = "{base}"
reconnect_min_s = 0.1
reconnect_max_s = 1.0

[[rooms]]
id = "sauna"
name = "Sauna"
  [[rooms.devices]]
  id = "heater"
  kind = "climate"
  type = "zigbee2mqtt"
  friendly_name = "sauna_heater"
  heater = true
  device_timer = "{timer}"
  limits.min_target_c = 60
  limits.max_target_c = 90
  limits.hard_max_c = 95
  limits.auto_off_minutes = {auto_off}
  [[rooms.scenes]]
  id = "heat"
  name = "Heat"
  devices.heater = {{ mode = "heat", target_c = 80 }}
"""


@dataclass
class HeaterSite:
    daemon: EdgeProcess
    zigbee: ZigbeeSimulator
    broker: Broker
    site_id: str

    @property
    def heater(self) -> SimulatedZigbeeDevice:
        return self.zigbee.devices["sauna_heater"]

    def mode(self) -> str:
        return str(self.heater.state["system_mode"])

    async def heat(self) -> float:
        """Start a session through the daemon; monotonic time of the command."""
        async with aiomqtt.Client(self.broker.host, self.broker.port) as client:
            t0 = time.monotonic()
            await client.publish(scene_set_topic(self.site_id, "sauna"), b"heat", qos=1)
        await wait_for(lambda: self.mode() == "heat", 15, "the heater heating", self)
        return t0


async def wait_for(cond: Any, within_s: float, what: str, site: HeaterSite) -> float:
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > within_s:
            tail = "\n".join(list(site.daemon.output)[-30:])
            raise AssertionError(
                f"{what}: not within {within_s}s (heater {site.heater.state}); daemon said:\n{tail}"
            )
        await asyncio.sleep(0.05)
    return time.monotonic()


async def start_heater_site(broker: Broker, tmp: Path, timer: str) -> HeaterSite:
    tag = uuid.uuid4().hex[:8]
    site_id, base = f"heat-{tag}", f"heat-z2m-{tag}"
    config = tmp / "site.toml"
    text = SITE.format(
        site=site_id,
        api_port=free_port(),
        host=broker.host,
        port=broker.port,
        base=base,
        timer=timer,
        auto_off=LIMIT_S / 60,
    )
    await asyncio.to_thread(config.write_text, text)
    heater = SimulatedZigbeeDevice(DeviceKind.CLIMATE, "sauna_heater")
    zigbee = ZigbeeSimulator(broker.host, broker.port, base=base, devices=[heater], tick_s=0.1)
    await zigbee.start()
    daemon = EdgeProcess(config, tmp / "data")
    await daemon.start()
    return HeaterSite(daemon, zigbee, broker, site_id)


@contextlib.asynccontextmanager
async def heater_site(broker: Broker, tmp: Path, timer: str) -> AsyncIterator[HeaterSite]:
    s = await start_heater_site(broker, tmp, timer)
    try:
        yield s
    finally:
        await s.daemon.stop(signal.SIGKILL)
        await s.zigbee.stop()


@pytest.fixture
async def no_timer_site(mqtt_broker: Broker, tmp_path: Path) -> AsyncIterator[HeaterSite]:
    async with heater_site(mqtt_broker, tmp_path, "none") as s:
        yield s


@pytest.fixture
async def timer_site(mqtt_broker: Broker, tmp_path: Path) -> AsyncIterator[HeaterSite]:
    async with heater_site(mqtt_broker, tmp_path, "on_time") as s:
        yield s


def assert_off_at_limit(t0: float, t_off: float) -> None:
    elapsed = t_off - t0
    assert LIMIT_S - EARLY_S <= elapsed <= LIMIT_S + LATE_S, (
        f"heater went off {elapsed:.1f} s after the heat command; the limit is {LIMIT_S:g} s"
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
async def test_restart_mid_session_resumes_the_auto_off_clock(
    no_timer_site: HeaterSite, sig: signal.Signals
) -> None:
    """No device timer: only the daemon's persisted clock can end the session on time."""
    site = no_timer_site
    t0 = await site.heat()
    await asyncio.sleep(LIMIT_S * 0.4)
    await site.daemon.stop(sig)
    assert site.mode() == "heat"  # nothing else turned it off
    await site.daemon.start()
    t_off = await wait_for(lambda: site.mode() == "off", LIMIT_S + 10, "auto-off", site)
    assert_off_at_limit(t0, t_off)


async def test_heater_found_heating_past_its_limit_is_switched_off_at_start(
    no_timer_site: HeaterSite,
) -> None:
    site = no_timer_site
    t0 = await site.heat()
    await site.daemon.stop(signal.SIGKILL)
    while time.monotonic() - t0 < LIMIT_S + 1:
        assert site.mode() == "heat"
        await asyncio.sleep(0.2)
    await site.daemon.start()
    started = time.monotonic()
    t_off = await wait_for(lambda: site.mode() == "off", 10, "off right after start", site)
    assert t_off - started <= 5.0
    assert site.daemon.said("auto-off limit")


async def test_dead_daemon_heater_ends_off_by_its_own_timer(timer_site: HeaterSite) -> None:
    site = timer_site
    t0 = await site.heat()
    heat_commands = [c for c in site.heater.commands if c.get("system_mode") == "heat"]
    assert heat_commands, site.heater.commands
    on_time = heat_commands[-1].get("on_time")
    assert on_time is not None and LIMIT_S - 2 <= on_time <= LIMIT_S, heat_commands[-1]
    await asyncio.sleep(1.0)
    await site.daemon.stop(signal.SIGKILL)  # and it stays dead
    t_off = await wait_for(lambda: site.mode() == "off", LIMIT_S + 10, "device-side off", site)
    assert_off_at_limit(t0, t_off)
