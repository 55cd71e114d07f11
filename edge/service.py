"""The daemon's supervisor: builds drivers, devices and the core from a site
config, runs every long-lived task in one TaskGroup, and shuts down in a
fixed order.

Start order: database → transports (MQTT, Modbus buses) → device pollers →
state persistence → MQTT bridge → heater guards → cloud sync → extra services →
LAN API.
Stop is the reverse, one task at a time, so nothing that is still running
loses a dependency under it; ``stop()`` is safe to call twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from drivers.modbus.bus import ModbusBus
from drivers.modbus.config import ModbusDeviceConfig
from drivers.modbus.devices import build_modbus_device
from drivers.model import Device, DeviceSnapshot
from drivers.mqtt.connection import MqttConnection
from drivers.mqtt.devices import build_mqtt_device
from edge.api.server import ApiServer
from edge.api.settings import ApiSettings
from edge.attendance import forward_attendance
from edge.config import SiteConfig
from edge.core import EdgeCore
from edge.events import EventBus
from edge.mqtt_bridge import MqttBridge
from edge.ops.layout import DataDirLock
from edge.safety import HeaterGuard
from edge.shop.base import ShopConfig
from edge.shop.db import open_database
from edge.shop.service import Shop
from edge.store import Store
from sync import run_sync_job
from sync.client import MemberHook
from sync.schema import migrate_sync

if TYPE_CHECKING:
    from edge.door.service import DoorService

log = logging.getLogger(__name__)

DB_NAME = "edge.db"
SHOP_DB_NAME = "shop.db"

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
        ),
    )


def _member_hook(door: DoorService | None) -> MemberHook | None:
    """A membership end or consent withdrawal from the cloud destroys that
    member's face templates here at once."""
    if door is None:
        return None

    async def hook(member_id: str, active: bool, consent: bool) -> None:
        destroyed = await door.on_member_change(member_id, active, consent)
        if destroyed:
            log.info("destroyed %d face templates of member %s (via sync)", destroyed, member_id)

    return hook


class EdgeService:
    def __init__(
        self,
        config: SiteConfig,
        *,
        data_dir: Path | None = None,
        with_api: bool = True,
        api_settings: ApiSettings | None = None,
    ) -> None:
        self.config = config
        self.with_api = with_api
        self.api_settings = api_settings or config.api
        self.api: ApiServer | None = None
        self.data_dir = Path(data_dir or config.storage.data_dir)
        self.events = EventBus()
        self.store = Store(
            self.data_dir / DB_NAME, history_limit=config.storage.state_history_limit
        )
        self.shop = open_shop(config, self.data_dir)
        self.mqtt: MqttConnection | None = None
        self.buses: dict[str, ModbusBus] = {}
        self.devices: dict[str, Device] = {}
        self.core: EdgeCore | None = None
        self.guards: list[HeaterGuard] = []
        self._extra: list[tuple[str, ExtraService]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._supervisor: asyncio.Task[None] | None = None
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
            self.mqtt = MqttConnection(cfg.mqtt, site_id=cfg.site.id)
        for bus_cfg in cfg.modbus_buses:
            self.buses[bus_cfg.id] = ModbusBus(bus_cfg)
        for room in cfg.rooms:
            for dev_cfg in room.devices:
                device_id = f"{room.id}/{dev_cfg.id}"
                device: Device
                if isinstance(dev_cfg, ModbusDeviceConfig):
                    device = build_modbus_device(dev_cfg, self.buses[dev_cfg.bus], device_id)
                else:
                    assert self.mqtt is not None  # the config validator guarantees it
                    device = build_mqtt_device(dev_cfg, self.mqtt, device_id)
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
        return core

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> EdgeCore:
        if self._started:
            raise RuntimeError("EdgeService.start() called twice")
        self._started = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._claim_data_dir)
        await self.store.open()
        await loop.run_in_executor(None, self._migrate_shop)
        self.core = core = self._build()
        ready = asyncio.get_running_loop().create_future()
        self._supervisor = asyncio.create_task(self._supervise(core, ready), name="edge-supervisor")
        await ready
        if self.api is not None:
            # "Started" (and systemd's READY=1) means tablets can connect: wait
            # for the API to listen, unless the supervisor fails first.
            listening = asyncio.create_task(self.api.ready(), name="edge-api-ready")
            await asyncio.wait([listening, self._supervisor], return_when=asyncio.FIRST_COMPLETED)
            if not listening.done():
                listening.cancel()
                await asyncio.wait([listening])
                failure = None if self._supervisor.cancelled() else self._supervisor.exception()
                raise RuntimeError(f"edge service failed while starting: {failure!r}")
        log.info("edge service for site %s started", self.config.site.id)
        return core

    def _claim_data_dir(self) -> None:
        # Staff password hashes, tokens and member data live here: owner only.
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # One daemon per data dir; `restore` relies on this lock too.
        self._lock.acquire()

    def _migrate_shop(self) -> None:
        self.shop.migrate()
        # The sync tables exist on a stand-alone spa too: its status page and
        # the outbox of attendance work before a cloud is configured.
        migrate_sync(self.shop.db)
        for db in (DB_NAME, SHOP_DB_NAME):
            (self.data_dir / db).chmod(0o600)

    async def _supervise(self, core: EdgeCore, ready: asyncio.Future[None]) -> None:
        try:
            async with asyncio.TaskGroup() as tg:

                def spawn(name: str, coro: Awaitable[None]) -> None:
                    self._tasks.append(tg.create_task(coro, name=name))  # type: ignore[arg-type]

                if self.mqtt is not None:
                    spawn("mqtt-connection", self.mqtt.run())
                for bus_id, bus in self.buses.items():
                    spawn(f"modbus-bus-{bus_id}", bus.run())
                for device_id, device in self.devices.items():
                    runner = getattr(device, "run", None)
                    if runner is not None:
                        spawn(f"device-{device_id}", runner())
                spawn("state-persist", self._persist_loop())
                if self.mqtt is not None:
                    spawn("mqtt-bridge", MqttBridge(core, self.mqtt).run())
                for guard in self.guards:
                    spawn(f"heater-guard-{guard.device.device_id}", guard.run())
                door = None
                if self.config.door is not None:
                    from edge.door.service import DoorService

                    door = DoorService(core, self.config.door, self.data_dir)
                if self.config.cloud is not None:
                    hook = _member_hook(door)
                    spawn(
                        "cloud-sync",
                        run_sync_job(self.shop, self.config.cloud, on_member_change=hook),
                    )
                    spawn("attendance-forward", forward_attendance(core))
                for name, factory in self._extra:
                    spawn(name, factory(core))
                if door is not None:
                    spawn("door", door.run())
                if self.with_api:
                    # Last to start, first to stop: no request finds a stopped part.
                    self.api = ApiServer(core, data_dir=self.data_dir, settings=self.api_settings)
                    spawn("lan-api", self.api.run())
                ready.set_result(None)
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
            raise

    async def wait(self) -> None:
        """Until the supervisor ends (a task failed, or stop() was called)."""
        if self._supervisor is not None:
            # asyncio.wait never raises the supervisor's own outcome, and a
            # cancellation of the caller still propagates.
            await asyncio.wait([self._supervisor])

    async def stop(self) -> None:
        log.debug("stop requested")
        if self._stopped:
            return
        self._stopped = True
        # Reverse start order, one at a time: API and guards first, transports last.
        for task in reversed(self._tasks):
            log.debug("stopping %s", task.get_name())
            task.cancel()
            await asyncio.wait([task])
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.wait([self._supervisor])
            if not self._supervisor.cancelled() and self._supervisor.exception() is not None:
                log.error("supervisor ended with %r", self._supervisor.exception())
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
