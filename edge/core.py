"""The edge core: rooms, typed devices, commands within limits, scenes.

Everything that changes a device goes through :meth:`EdgeCore.command` or
:meth:`EdgeCore.activate_scene`, whoever asks (tablet, staff, MQTT, safety):
limits are checked first, the command is logged with its actor and result,
and state changes flow out on the event bus.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from drivers.config import DeviceConfigBase
from drivers.errors import (
    DeviceClamped,
    DeviceRejected,
    DeviceTimeout,
    DeviceUnavailable,
    DriverError,
    TransportError,
    UnsupportedCommand,
)
from drivers.model import (
    ClimateCommand,
    ClimateMode,
    Command,
    Device,
    DeviceSnapshot,
    LockCommand,
    iter_fields,
)
from edge.config import RoomConfig, SiteConfig
from edge.errors import NotFound, StorageError
from edge.events import EventBus
from edge.limits import build_command, check_command, effective_command
from edge.room_views import RoomViews
from edge.serialize import snapshot_to_dict
from edge.shop.service import Shop
from edge.spool import WriteSpool
from edge.store import CommandRecord, Store

T = TypeVar("T")

DEFAULT_COMMAND_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Actor:
    kind: str  # staff | tablet | mqtt | system | safety
    id: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


SYSTEM = Actor("system", "edge")


@dataclass(frozen=True, slots=True)
class DeviceOutcome:
    device_id: str
    result: str  # ok | clamped | rejected | timeout | unavailable | io_error | unsupported
    detail: str | None
    duration_ms: float
    # "clamped": each asked field the device did not take -> the value it holds.
    held: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.result == "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "result": self.result,
            "detail": self.detail,
            "duration_ms": round(self.duration_ms, 2),
            **({"held": self.held} if self.held is not None else {}),
        }


@dataclass(frozen=True, slots=True)
class SceneResult:
    room_id: str
    scene_id: str
    outcomes: list[DeviceOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    @property
    def failed(self) -> list[DeviceOutcome]:
        return [o for o in self.outcomes if not o.ok]

    def as_dict(self) -> dict[str, Any]:
        return {
            "room_id": self.room_id,
            "scene_id": self.scene_id,
            "ok": self.ok,
            "devices": [o.as_dict() for o in self.outcomes],
            "failed": [o.device_id for o in self.failed],
        }


@dataclass
class Room:
    config: RoomConfig
    devices: dict[str, Device]  # local device id -> device

    @property
    def id(self) -> str:
        return self.config.id

    def device_config(self, device_id: str) -> DeviceConfigBase:
        for cfg in self.config.devices:
            if cfg.id == device_id:
                return cfg
        raise NotFound("device", f"{self.id}/{device_id}")

    def snapshot(self) -> dict[str, Any]:
        return {
            "room_id": self.id,
            "name": self.config.name,
            "devices": {
                dev_id: snapshot_to_dict(dev.snapshot()) for dev_id, dev in self.devices.items()
            },
            "scenes": [{"id": s.id, "name": s.name} for s in self.config.scenes],
        }


def _result_of(exc: BaseException) -> str:
    # Order matters: DeviceTimeout is a TransportError, DeviceClamped a DeviceRejected.
    if isinstance(exc, DeviceClamped):
        return "clamped"
    if isinstance(exc, DeviceTimeout):
        return "timeout"
    if isinstance(exc, DeviceUnavailable):
        return "unavailable"
    if isinstance(exc, DeviceRejected):
        return "rejected"
    if isinstance(exc, UnsupportedCommand):
        return "unsupported"
    if isinstance(exc, TransportError):
        return "io_error"
    return "error"


class EdgeCore:
    def __init__(
        self,
        config: SiteConfig,
        store: Store,
        events: EventBus,
        devices: Mapping[str, Device],
        *,
        command_timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S,
        shop: Shop | None = None,
    ) -> None:
        self.config = config
        self.shop = shop
        # The shop's calls are synchronous transactions: run them off the loop.
        self._shop_executor = ThreadPoolExecutor(4, thread_name_prefix="shop")
        self.site_id = config.site.id
        self.store = store
        self.events = events
        self.command_timeout_s = command_timeout_s
        # A command log row that could not be written waits here: the command
        # itself has already gone to the device, so the record must not be lost.
        self.command_spool: WriteSpool[CommandRecord] = WriteSpool("command-log", store.log_command)
        # Heaters: device id -> the guard's hook every heat command passes
        # through before it is sent (it starts and persists the auto-off clock
        # and adds the device-side timeout; see edge.safety.heater).
        self.heat_hooks: dict[str, Callable[[ClimateCommand], Awaitable[ClimateCommand]]] = {}
        # The last command sent to each device: (actor, fields, monotonic time),
        # so the heater guard can name who set a value it sees.
        self.last_commands: dict[str, tuple[Actor, dict[str, Any], float]] = {}
        self._rooms: dict[str, Room] = {}
        for room_cfg in config.rooms:
            local = {d.id: devices[f"{room_cfg.id}/{d.id}"] for d in room_cfg.devices}
            self._rooms[room_cfg.id] = Room(room_cfg, local)
        # Encoded room views, shared by the LAN API, WebSocket and MQTT.
        self.views = RoomViews(self)

    async def run_shop(self, fn: Callable[[Shop], T]) -> T:
        """Run ``fn(shop)`` on the shop's thread pool."""
        shop = self.shop
        if shop is None:
            raise NotFound("service", "shop")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._shop_executor, fn, shop)

    def close(self) -> None:
        self.command_spool.close()
        self._shop_executor.shutdown(wait=True)

    # -- lookup ------------------------------------------------------------------
    def rooms(self) -> list[Room]:
        return list(self._rooms.values())

    def room(self, room_id: str) -> Room:
        room = self._rooms.get(room_id)
        if room is None:
            raise NotFound("room", room_id)
        return room

    def device(self, room_id: str, device_id: str) -> tuple[Device, DeviceConfigBase]:
        room = self.room(room_id)
        cfg = room.device_config(device_id)
        return room.devices[device_id], cfg

    def all_devices(self) -> list[tuple[str, Device]]:
        return [(room.id, dev) for room in self._rooms.values() for dev in room.devices.values()]

    # -- commands ------------------------------------------------------------------
    def prepare(
        self, room_id: str, device_id: str, command: Command | Mapping[str, Any]
    ) -> tuple[Device, Command]:
        """Resolve and check a command; raises NotFound/InvalidCommand/LimitViolation."""
        device, cfg = self.device(room_id, device_id)
        typed = command if not isinstance(command, Mapping) else build_command(cfg.kind, command)
        check_command(cfg.kind, cfg.limits, typed)
        return device, effective_command(cfg.limits, typed, device.snapshot().state)

    async def command(
        self,
        room_id: str,
        device_id: str,
        command: Command | Mapping[str, Any],
        actor: Actor,
        *,
        timeout: float | None = None,
        wait_for_log: bool = True,
        force: bool = False,
    ) -> DeviceOutcome:
        """Check, send and log one command.  ``force`` sends even to a device
        marked offline (the heater guard's safety off).  Refusals before sending raise; driver
        failures come back as the outcome's ``result``.

        The log row is written after the send.  If it cannot be written the row
        is spooled and written when storage returns; for a lock command with
        ``wait_for_log`` (the default) :class:`StorageError` is then raised
        after the send so the door can undo what it cannot record.  Other
        commands return their outcome: the device did act.  Safety actions pass
        ``wait_for_log=False``: they return as soon as the device confirmed,
        whatever the disk does."""
        device, typed = self.prepare(room_id, device_id, command)
        return await self._execute(
            device, typed, actor, timeout=timeout, wait_for_log=wait_for_log, force=force
        )

    async def activate_scene(self, room_id: str, scene_id: str, actor: Actor) -> SceneResult:
        room = self.room(room_id)
        scene = next((s for s in room.config.scenes if s.id == scene_id), None)
        if scene is None:
            raise NotFound("scene", f"{room_id}/{scene_id}")
        # Check every device's command before sending any: a scene never half-starts
        # because one value was out of limits.
        planned = [
            self.prepare(room_id, dev_id, action.model_dump(exclude_none=True))
            for dev_id, action in scene.devices.items()
        ]
        outcomes = await asyncio.gather(
            *(self._execute(dev, cmd, actor, scene_id=scene_id) for dev, cmd in planned)
        )
        result = SceneResult(room_id, scene_id, list(outcomes))
        self.events.publish("scene", {**result.as_dict(), "actor": str(actor)}, room_id=room_id)
        return result

    async def _execute(
        self,
        device: Device,
        command: Command,
        actor: Actor,
        *,
        scene_id: str | None = None,
        timeout: float | None = None,
        wait_for_log: bool = True,
        force: bool = False,
    ) -> DeviceOutcome:
        command = await self._through_heat_hook(device, command)
        started = time.perf_counter()
        detail: str | None = None
        held: dict[str, Any] | None = None
        try:
            await device.send(command, timeout=timeout or self.command_timeout_s, force=force)
            result = "ok"
        except DriverError as exc:
            result, detail = _result_of(exc), str(exc) or type(exc).__name__
            held = exc.values if isinstance(exc, DeviceClamped) else None
        elapsed = (time.perf_counter() - started) * 1000
        outcome = DeviceOutcome(device.device_id, result, detail, elapsed, held)
        fields = {k: (v.value if hasattr(v, "value") else v) for k, v in iter_fields(command)}
        self.last_commands[device.device_id] = (actor, fields, time.monotonic())
        record = CommandRecord(
            actor.kind,
            actor.id,
            device.device_id,
            fields,
            result,
            detail,
            elapsed,
            scene_id,
            durable=isinstance(command, LockCommand),
        )
        room_id = device.device_id.split("/", 1)[0]
        # Published before the log write: what happened at the device is news
        # whether or not the disk takes the row.
        self.events.publish(
            "command",
            {**outcome.as_dict(), "command": fields, "actor": str(actor), "scene_id": scene_id},
            room_id=room_id,
        )
        if not wait_for_log or self.command_spool.pending:
            # Queued behind earlier rows, in order.  A waiting caller still
            # returns only once its row is written (or storage is known down).
            self.command_spool.add(record)
            if not wait_for_log:
                return outcome
            if self.command_spool.last_error is None:
                await self.command_spool.flush(timeout=self.command_timeout_s)
            if (
                record.durable
                and self.command_spool.pending
                and self.command_spool.last_error is not None
            ):
                raise StorageError(f"command log: {self.command_spool.last_error}")
            return outcome
        try:
            await self.store.log_command(record)
        except StorageError as exc:
            self.command_spool.add(record, exc)
            # A lock command that cannot be recorded is the door's to handle
            # (it relocks at once); any other command did happen, and its row
            # waits in the spool: reporting it failed would misreport the room.
            if record.durable:
                raise
        return outcome

    async def _through_heat_hook(self, device: Device, command: Command) -> Command:
        """Every heat command to a heater, whoever sent it, passes its guard first."""
        hook = self.heat_hooks.get(device.device_id)
        if hook is None or not isinstance(command, ClimateCommand):
            return command
        if command.mode not in (ClimateMode.HEAT, ClimateMode.AUTO):
            return command
        return await hook(command)

    # -- state flow ------------------------------------------------------------------
    def on_device_change(self, snap: DeviceSnapshot) -> None:
        room_id = snap.device_id.split("/", 1)[0]
        self.events.publish("device_state", snapshot_to_dict(snap), room_id=room_id)
