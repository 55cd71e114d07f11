"""``coresync-edge demo``: the daemon on a built-in site with simulated devices.

The simulators speak the real protocols over real sockets: Zigbee2MQTT-style
lights, lock and sauna heater on the MQTT broker, and two thermostats behind
a pymodbus Modbus TCP gateway.  Nothing here is a mock of the daemon's side.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any

from drivers.modbus.simulator import ThermostatGateway
from drivers.mqtt.config import Zigbee2MqttDeviceConfig
from drivers.mqtt.simulator import SimulatedZigbeeDevice, ZigbeeSimulator
from edge.config import SiteConfig, validate_data
from edge.demo import demo_site_text
from edge.demo.broker import EmbeddedBroker, broker_answers, free_port
from edge.service import EdgeService
from edge.shop.demo_seed import seed_demo_shop
from edge.shop.records import Member
from vision.extra import vision_problem

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path(".demo-data")
REPO = Path(__file__).resolve().parents[2]
DEMO_CLIP = REPO.parent / "shared" / "faces" / "video" / "short_hamilton_clip.mp4"
DEMO_PHOTOS = REPO.parent / "shared" / "faces" / "dev" / "alex_lacamoire"  # he is in the clip
DEMO_SITE_FILE = "demo-site.toml"  # written to the data dir for the door CLI


def demo_config(mqtt_host: str, mqtt_port: int, modbus_port: int, data_dir: Path) -> SiteConfig:
    """The built-in site with the broker, gateway port and data dir filled in."""
    text = demo_site_text()
    data: dict[str, Any] = tomllib.loads(text)
    # The client id must be unique on the broker: several demos (a newcomer's
    # and the test suite's) may share 127.0.0.1:1883, and two clients with one
    # id knock each other off forever.
    client_id = f"coresync-{data['site']['id']}-{os.getpid()}"
    data["mqtt"].update(host=mqtt_host, port=mqtt_port, client_id=client_id)
    for bus in data["modbus_buses"]:
        bus["port"] = modbus_port
    data["storage"] = {"data_dir": str(data_dir)}
    if DEMO_CLIP.is_file():
        data["door"]["camera"] = str(DEMO_CLIP)
    problem = vision_problem()
    if problem is not None:
        # `pip install coresync-edge` runs the rooms; the door waits for the extra.
        log.warning("demo door is off: %s", problem)
        del data["door"]
    return validate_data(data, text, "edge/demo/site.toml")


def zigbee_devices(cfg: SiteConfig) -> list[SimulatedZigbeeDevice]:
    return [
        SimulatedZigbeeDevice(dev.kind, dev.friendly_name)
        for room in cfg.rooms
        for dev in room.devices
        if isinstance(dev, Zigbee2MqttDeviceConfig)
    ]


async def select_broker(spec: str | None) -> tuple[str, int, EmbeddedBroker | None]:
    """The broker named by --broker ("embedded" forces one), else 127.0.0.1:1883
    if it answers, else an embedded one."""
    if spec and spec != "embedded":
        host, _, port = spec.rpartition(":")
        return host or "127.0.0.1", int(port), None
    if spec is None and await broker_answers("127.0.0.1", 1883):
        return "127.0.0.1", 1883, None
    embedded = EmbeddedBroker()
    await embedded.start()
    return embedded.host, embedded.port, embedded


class DemoSite:
    """Everything the demo runs, started and stopped in a fixed order."""

    def __init__(
        self,
        data_dir: Path | None = None,
        broker: str | None = None,
        *,
        http_port: int | None = 8080,
    ) -> None:
        self.data_dir = data_dir or DEFAULT_DATA_DIR
        self.broker_spec = broker
        self.http_port = http_port  # None: no LAN API
        self.embedded: EmbeddedBroker | None = None
        self.gateway: ThermostatGateway | None = None
        self.zigbee: ZigbeeSimulator | None = None
        self.service: EdgeService | None = None
        self.config: SiteConfig | None = None
        self.members: dict[str, Member] = {}
        self.mqtt_host = "127.0.0.1"
        self.mqtt_port = 1883

    async def start(self) -> EdgeService:
        host, port, self.embedded = await select_broker(self.broker_spec)
        self.mqtt_host, self.mqtt_port = host, port
        modbus_port = free_port()
        self.gateway = ThermostatGateway(host="127.0.0.1", port=modbus_port, units=[1, 2])
        await self.gateway.start()
        # Reads the packaged site file and looks for the demo clip: off the loop.
        self.config = cfg = await asyncio.to_thread(
            demo_config, host, port, modbus_port, self.data_dir
        )
        assert cfg.mqtt is not None
        self.zigbee = ZigbeeSimulator(
            host, port, base=cfg.mqtt.zigbee2mqtt_base, devices=zigbee_devices(cfg)
        )
        await self.zigbee.start()
        self.service = EdgeService(
            cfg,
            data_dir=self.data_dir,
            with_api=self.http_port is not None,
            api_settings=cfg.api.model_copy(update={"port": self.http_port or 0}),
        )
        core = await self.service.start()
        # The same real-looking catalogue and members as the cloud demo.
        self.members = await core.run_shop(seed_demo_shop)
        await asyncio.to_thread(
            lambda: (self.data_dir / DEMO_SITE_FILE).write_text(demo_site_text())
        )
        if cfg.door is not None and cfg.door.camera is None:
            log.warning(
                "demo door has no camera (%s not found): face access is off; "
                "keypad PIN and staff remote unlock still work",
                DEMO_CLIP,
            )
        log.info(
            "demo site %s up: MQTT %s:%d%s, Modbus gateway 127.0.0.1:%d, data in %s",
            cfg.site.id,
            host,
            port,
            " (embedded)" if self.embedded else "",
            modbus_port,
            self.data_dir,
        )
        return self.service

    async def stop(self) -> None:
        # Daemon first (it publishes its offline status), then the simulated
        # devices, then the broker they all talk through.
        if self.service is not None:
            await self.service.stop()
        if self.zigbee is not None:
            await self.zigbee.stop()
        if self.gateway is not None:
            await self.gateway.stop()
        if self.embedded is not None:
            await self.embedded.stop()


async def run_demo(data_dir: Path | None, http_port: int, broker: str | None) -> int:
    site = DemoSite(data_dir, broker, http_port=http_port)
    try:
        service = await site.start()
        if service.api is not None:
            await service.api.ready()
        print(f"CoreSync demo site running (site id {site.config.site.id if site.config else '?'})")
        if service.api is not None:
            secret = site.data_dir / "initial-admin-password"
            print(f"  staff dashboard: {service.api.url}  (user admin, password in {secret})")
            print(f"  room tablet:     {service.api.url}tablet")
        for line in mqtt_banner(site):
            print(line)
        door_banner(site)
        print("Press Ctrl-C to stop.", flush=True)
        await service.wait()
    finally:
        await site.stop()
    return 0


def mqtt_commands(site: DemoSite) -> tuple[str, str]:
    """The exact shell lines to watch the rooms and run a scene over MQTT,
    for the broker in use (``-h``/``-p`` left out on the default
    127.0.0.1:1883, so they read as the README's)."""
    site_id = site.config.site.id if site.config else "demo-spa"
    where = ""
    if (site.mqtt_host, site.mqtt_port) != ("127.0.0.1", 1883):
        where = f"-h {site.mqtt_host} -p {site.mqtt_port} "
    watch = f"mosquitto_sub {where}-t 'coresync/{site_id}/rooms/+/state' -v &"
    scene = f"mosquitto_pub {where}-t coresync/{site_id}/rooms/treatment-1/scene/set -m relax"
    return watch, scene


def mqtt_banner(site: DemoSite) -> list[str]:
    kind = f"embedded {site.embedded.kind}" if site.embedded is not None else "running"
    watch, scene = mqtt_commands(site)
    return [
        f"  MQTT broker:     {site.mqtt_host}:{site.mqtt_port} ({kind}); try a scene:",
        f"    {watch}",
        f"    {scene}",
    ]


def door_banner(site: DemoSite) -> None:
    """How to give a demo member face access: consent first, then enroll (CLI)."""
    cfg = site.config
    if cfg is None or cfg.door is None:
        return
    camera = cfg.door.camera or "none (PIN and remote unlock only)"
    print(f"  entrance door:   camera {camera}")
    member = next(iter(site.members.values()), None)
    if member is None:
        return
    common = f"--config {site.data_dir / DEMO_SITE_FILE} --data-dir {site.data_dir}"
    # `make demo` runs from the venv, which a newcomer's shell may not have on PATH.
    exe = shutil.which("coresync-edge") or str(Path(sys.executable).parent / "coresync-edge")
    photos = f"{DEMO_PHOTOS}/*" if DEMO_PHOTOS.is_dir() else "a.jpg b.jpg c.jpg"
    print("  face access is opt-in; to enroll a demo member (e.g. " + member.name + "):")
    print(
        f"    {exe} members {common} consent {member.id} "
        "--witness YOUR_NAME --purpose 'door access by face'"
    )
    print(f"    {exe} enroll {common} --member {member.id} --photos {photos}")
