"""The daemon: builds drivers, devices and the core from a site config, runs
every long-lived part as its own supervised component (edge/supervisor.py:
a crash restarts that component alone, with backoff), and shuts down in a
fixed order.

Start order: database → transports (MQTT, Modbus buses) → device pollers →
state persistence → MQTT bridge → heater guards → scene schedules → cloud sync →
extra services → LAN API.
Stop is the reverse, one component at a time, so nothing that is still running
loses a dependency under it; ``stop()`` is safe to call twice.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from drivers.modbus.config import ModbusDeviceConfig
from drivers.modbus.devices import ModbusBuses, ModbusDevice
from drivers.model import Device, DeviceSnapshot
from drivers.mqtt.connection import MqttConnection
from drivers.mqtt.devices import build_mqtt_device
from edge import supervisor
from edge.alerts.config import AlertsConfig
from edge.alerts.dispatcher import AlertDispatcher, watch_components
from edge.alerts.door_watch import watch_forced_doors
from edge.alerts.sync_watch import watch_sync
from edge.api.server import ApiServer
from edge.api.settings import ApiSettings
from edge.attendance import forward_attendance
from edge.clock import Clock
from edge.config import SiteConfig
from edge.core import EdgeCore
from edge.door import registry
from edge.door.display import DoorDisplay
from edge.events import EventBus
from edge.guest import register_guards
from edge.ha_discovery import HaDiscovery
from edge.health import LoopMonitor
from edge.mqtt_bridge import MqttBridge
from edge.ops.layout import DOOR_DB, EDGE_DB, SHOP_DB, DataDirLock, check_data_files
from edge.ops.retention import run_retention
from edge.safety import HeaterGuard
from edge.schedules import ScheduleRunner
from edge.shop.base import ShopConfig
from edge.shop.db import open_database
from edge.shop.service import Shop
from edge.storage_keeper import StorageKeeper
from edge.store import Store
from edge.supervisor import Supervisor
from sync import run_sync_job

log = logging.getLogger(__name__)

DB_NAME = EDGE_DB  # edge.ops.layout.DATA_FILES is the one list
SHOP_DB_NAME = SHOP_DB

# A coroutine factory run as one supervised task once the core is up.
ExtraService = Callable[[EdgeCore], Awaitable[None]]


def open_shop(config: SiteConfig, data_dir: Path) -> Shop:
    """The site's shop on <data_dir>/shop.db (not yet migrated)."""
    return Shop(
        open_database(str(Path(data_dir) / SHOP_DB_NAME)),
        ShopConfig(
            node_id=config.cloud.node_id if config.cloud else config.site.id,
            tax_rate=config.site.tax_rate,
            # A stand-alone spa numbers its own orders; with a cloud, the edge
            # spends the number blocks the cloud leases it (docs/numbering.md).
            number_authority=config.cloud is None,
            timezone=config.site.timezone,
            site=config.site.id,
        ),
    )


class EdgeService:
    def __init__(
        self,
        config: SiteConfig,
        *,
        data_dir: Path | None = None,
        with_api: bool = True,
        api_settings: ApiSettings | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.clock = clock  # the scheduler's; tests inject one they control
        self.with_api = with_api
        self.api_settings = api_settings or config.api
        self.api: ApiServer | None = None
        self.data_dir = Path(data_dir or config.storage.data_dir)
        self.events = EventBus()
        self.store = Store(
            self.data_dir / DB_NAME, history_limit=config.storage.state_history_limit
        )
        self.shop = open_shop(config, self.data_dir)
        self.storage = StorageKeeper(self.data_dir, self.store, self.shop, self.events)
        self.mqtt: MqttConnection | None = None
        self.modbus = ModbusBuses(config.modbus_buses)
        self.devices: dict[str, Device] = {}
        self.core: EdgeCore | None = None
        self.guards: list[HeaterGuard] = []
        self.schedules: ScheduleRunner | None = None
        self.alerts: AlertDispatcher | None = None
        self._extra: list[tuple[str, ExtraService]] = []
        self.supervisor = Supervisor(config.supervision)
        self.monitor = LoopMonitor(self.supervisor)
        self.supervisor.monitor = self.monitor
        self._api_started = asyncio.Event()
        self._pending: dict[str, DeviceSnapshot] = {}
        self._pending_event = asyncio.Event()
        self._started = False
        self._stopped = False
        self._lock = DataDirLock(self.data_dir)

    def add_service(self, name: str, factory: ExtraService) -> None:
        """Run ``factory(core)`` as a supervised task (call before start)."""
        self._extra.append((name, factory))

    # -- build ---------------------------------------------------------------------
    def _build(self) -> EdgeCore:
        cfg = self.config
        if cfg.mqtt is not None:
            node_id = cfg.cloud.node_id if cfg.cloud is not None else None
            self.mqtt = MqttConnection(cfg.mqtt, site_id=cfg.site.id, node_id=node_id)
        for room in cfg.rooms:
            for dev_cfg in room.devices:
                device_id = f"{room.id}/{dev_cfg.id}"
                device: Device
                if isinstance(dev_cfg, ModbusDeviceConfig):
                    device = self.modbus.add_device(dev_cfg, device_id)
                else:
                    assert self.mqtt is not None  # the config validator guarantees it
                    device = build_mqtt_device(dev_cfg, self.mqtt, device_id)
                device.set_deadband(dev_cfg.deadband)
                self.devices[device_id] = device
        core = EdgeCore(cfg, self.store, self.events, self.devices, shop=self.shop)
        for dev in self.devices.values():
            dev.subscribe(core.on_device_change)
            dev.subscribe(self._queue_persist)
        for room in cfg.rooms:
            for dev_cfg in room.devices:
                if dev_cfg.heater:
                    heater = self.devices[f"{room.id}/{dev_cfg.id}"]
                    self.guards.append(HeaterGuard(core, room.id, heater, dev_cfg.limits))
        register_guards(core, self.guards)  # the guest tablet's "session time left"
        return core

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> EdgeCore:
        if self._started:
            raise RuntimeError("EdgeService.start() called twice")
        self._started = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._claim_data_dir)
        await self.storage.open()
        self.core = core = self._build()
        supervisor.register(core, self.supervisor)
        await self._supervise(core)
        if self.with_api:
            # "Started" (and systemd's READY=1) means tablets can connect: wait
            # for the API to listen; its first attempt failing fails the start
            # (a taken port is not fixed by restarting in place).
            await self._api_started.wait()
            assert self.api is not None
            api = self.supervisor.components["lan-api"]
            listening = asyncio.create_task(self.api.ready(), name="edge-api-ready")
            crashed = asyncio.create_task(api.crashed.wait(), name="edge-api-crashed")
            await asyncio.wait([listening, crashed], return_when=asyncio.FIRST_COMPLETED)
            for task in (listening, crashed):
                task.cancel()
            await asyncio.wait([listening, crashed])
            if listening.cancelled():
                raise RuntimeError(f"edge service failed while starting: {api.last_error}")
        log.info("edge service for site %s started", self.config.site.id)
        return core

    def _claim_data_dir(self) -> None:
        # Staff password hashes, tokens and member data live here: owner only.
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # One daemon per data dir; `restore` relies on this lock too.
        self._lock.acquire()
        # A file left owned by root (a restore run as root) or read-only: one
        # clear line naming it, not a SQLite traceback from deep inside.
        try:
            check_data_files(self.data_dir)
        except BaseException:
            self._lock.release()
            raise

    async def _supervise(self, core: EdgeCore) -> None:
        """Every long-lived part as its own supervised component, in start order."""
        sup = self.supervisor
        sup.add("loop-monitor", self.monitor.run)
        sup.add("storage-monitor", self.storage.monitor)
        if self.mqtt is not None:
            mqtt = self.mqtt
            sup.links["mqtt"] = lambda: mqtt.is_connected
            sup.add("mqtt", self.mqtt.run)
        for bus_id, bus in self.modbus.buses.items():
            sup.links[f"modbus:{bus_id}"] = bus.is_connected
            sup.add(f"modbus:{bus_id}", functools.partial(self.modbus.run_bus, bus_id))
        for device_id, device in self.devices.items():
            runner = getattr(device, "run", None)
            if runner is not None and not isinstance(device, ModbusDevice):
                sup.add(f"device:{device_id}", runner)
        sup.add("state-persist", self._persist_loop)
        sup.add(
            "retention", lambda: run_retention(self.store, self.data_dir, self.config.retention)
        )
        if self.mqtt is not None:
            sup.add("mqtt-bridge", MqttBridge(core, self.mqtt).run)
            if self.config.home_assistant.discovery:
                ha = HaDiscovery(core, self.mqtt, self.config.home_assistant)
                sup.add("ha-discovery", ha.run)
        for guard in self.guards:
            sup.add(f"heater-guard:{guard.device.device_id}", guard.run, safety=True)
        # One runner across restarts: what it already ran stays done.
        self.schedules = await ScheduleRunner.create(core, self.clock)
        sup.add("schedules", self.schedules.run)
        if self.config.alerts is not None:
            await self._supervise_alerts(core, self.config.alerts)
        cloud = self.config.cloud
        if cloud is not None:
            sup.add(
                "cloud-sync",
                lambda: run_sync_job(self.shop, cloud, on_member_change=self._hook),
            )
            door_cfg = self.config.door
            if door_cfg is not None:
                door_db = self.data_dir / DOOR_DB
                door_id = f"{door_cfg.room}/{door_cfg.lock}"
                sup.add("attendance", lambda: forward_attendance(core, door_db, door_id))
        for name, factory in self._extra:
            sup.add(name, functools.partial(factory, core))
        if self.config.door is not None:
            if self.config.door.camera:
                sup.links["camera"] = self._camera_up
            sup.add("door", self._run_door)
            if self.mqtt is not None:
                display = DoorDisplay(core, self.mqtt, self.config.door)
                sup.add("door-display", display.run)
        if self.with_api:
            # Last to start, first to stop: no request finds a stopped part.
            sup.add("lan-api", self._run_api)

    async def _supervise_alerts(self, core: EdgeCore, config: AlertsConfig) -> None:
        """Critical events to staff channels; each channel is a link in /healthz."""
        self.alerts = alerts = await AlertDispatcher.create(core, config, self.clock)
        for channel in alerts.channels.values():
            self.supervisor.links[f"alerts:{channel.config.id}"] = channel.is_healthy
        self.supervisor.add("alerts", alerts.run)
        watch_forced_doors(core)  # device listeners, for the daemon's life
        self.supervisor.add("component-watch", lambda: watch_components(core, self.supervisor))
        if self.config.cloud is not None:
            after = config.sync_stuck_after_s
            self.supervisor.add("sync-watch", lambda: watch_sync(core, after))

    async def _run_door(self) -> None:
        # A fresh door service per (re)start: a crashed one is never reused.
        # Imported here, off the loop: it loads numpy and OpenCV, which a site
        # without a door never needs (docs/benchmarks.md, idle RSS).
        module = await asyncio.to_thread(importlib.import_module, "edge.door.service")
        DoorService = module.DoorService

        assert self.core is not None and self.config.door is not None
        door = DoorService(self.core, self.config.door, self.data_dir)
        try:
            await door.run()
        finally:
            # run() stops the door only once it started; a start that failed
            # half-way (door.db on a full disk) must not leak its threads.
            await door.stop()

    def _camera_up(self) -> bool:
        door = registry.door_for(self.core) if self.core is not None else None
        return bool(door is not None and door.source is not None and door.source.is_connected())

    async def _hook(self, member_id: str, active: bool, consent: bool) -> None:
        """A membership end or consent withdrawal from the cloud destroys that
        member's face templates here at once."""
        door = registry.door_for(self.core) if self.core is not None else None
        if door is None:
            return
        destroyed = await door.on_member_change(member_id, active, consent)
        if destroyed:
            log.info("destroyed %d face templates of member %s (via sync)", destroyed, member_id)

    async def _run_api(self) -> None:
        assert self.core is not None
        # A fresh aiohttp application per (re)start: one that was cleaned up
        # cannot be set up again.
        self.api = ApiServer(self.core, data_dir=self.data_dir, settings=self.api_settings)
        self._api_started.set()
        await self.api.run()

    async def wait(self) -> str:
        """Until a component exceeds its restart budget; returns why."""
        return await self.supervisor.wait()

    async def stop(self) -> None:
        log.debug("stop requested")
        if self._stopped:
            return
        self._stopped = True
        # Reverse start order, one at a time: API and guards first, transports last.
        await self.supervisor.stop_all()
        await self._flush_pending()
        loop = asyncio.get_running_loop()
        if self.core is not None:
            # Waits for the shop's worker threads: off the loop.
            await loop.run_in_executor(None, self.core.close)
        await loop.run_in_executor(None, self.shop.db.close)
        await self.store.close()
        self._lock.release()
        log.info("edge service stopped")

    # -- state persistence ------------------------------------------------------------
    def _queue_persist(self, snap: DeviceSnapshot) -> None:
        # Coalesce per device: a burst of updates costs one write of the latest.
        self._pending[snap.device_id] = snap
        self._pending_event.set()

    async def _persist_loop(self) -> None:
        while True:
            await self._pending_event.wait()
            self._pending_event.clear()
            await self._flush_pending()

    async def _flush_pending(self) -> None:
        batch, self._pending = self._pending, {}
        for snap in batch.values():
            try:
                await self.store.save_state(snap)
            except Exception:
                log.exception("could not store state of %s", snap.device_id)
