"""Typed device model: the only view of hardware that ``edge/`` gets.

Every driver (MQTT, Modbus, ...) turns its wire format into these types in its
codec layer and exposes each physical device as a :class:`Device`.  Values are
in human units everywhere above the codec: brightness in percent (0-100),
colour temperature in kelvin, temperatures in degrees Celsius.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeAlias

from drivers.color import xy_close
from drivers.errors import DeviceClamped


class Availability(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


class DeviceKind(StrEnum):
    LIGHT = "light"
    CLIMATE = "climate"
    LOCK = "lock"
    SENSOR = "sensor"


class ClimateMode(StrEnum):
    OFF = "off"
    HEAT = "heat"
    COOL = "cool"
    AUTO = "auto"


@dataclass(frozen=True, slots=True)
class LightState:
    on: bool | None = None
    brightness: int | None = None  # percent, 0-100
    color_temp_k: int | None = None
    color_xy: tuple[float, float] | None = None  # CIE 1931 xy (drivers.color)


@dataclass(frozen=True, slots=True)
class ClimateState:
    mode: ClimateMode | None = None
    target_c: float | None = None
    current_c: float | None = None
    humidity: float | None = None  # percent relative humidity


@dataclass(frozen=True, slots=True)
class LockState:
    locked: bool | None = None
    door_open: bool | None = None
    jammed: bool | None = None


@dataclass(frozen=True, slots=True)
class SensorState:
    values: Mapping[str, float] = field(default_factory=dict)


DeviceState: TypeAlias = LightState | ClimateState | LockState | SensorState


@dataclass(frozen=True, slots=True)
class LightCommand:
    on: bool | None = None
    brightness: int | None = None
    color_temp_k: int | None = None
    color_xy: tuple[float, float] | None = None  # a colour, or color_temp_k: not both


@dataclass(frozen=True, slots=True)
class ClimateCommand:
    mode: ClimateMode | None = None
    target_c: float | None = None
    # Device-side timeout of a heat command, seconds: set by the heater guard
    # only (never by a caller), so a dead daemon still ends in "off".
    on_time_s: int | None = None


@dataclass(frozen=True, slots=True)
class LockCommand:
    locked: bool


Command: TypeAlias = LightCommand | ClimateCommand | LockCommand

EMPTY_STATE: dict[DeviceKind, DeviceState] = {
    DeviceKind.LIGHT: LightState(),
    DeviceKind.CLIMATE: ClimateState(),
    DeviceKind.LOCK: LockState(),
    DeviceKind.SENSOR: SensorState(),
}

COMMAND_FOR_KIND: dict[DeviceKind, type[Command] | None] = {
    DeviceKind.LIGHT: LightCommand,
    DeviceKind.CLIMATE: ClimateCommand,
    DeviceKind.LOCK: LockCommand,
    DeviceKind.SENSOR: None,
}


@dataclass(frozen=True, slots=True)
class DeviceSnapshot:
    """What is known about one device at one moment."""

    device_id: str  # "<room_id>/<device_id>", unique on the site
    kind: DeviceKind
    availability: Availability
    last_seen: datetime | None
    state: DeviceState


def command_satisfied(state: DeviceState, command: Command) -> bool:
    """True when ``state`` shows every field the command asked for.

    Used to confirm a command from the state a device reports back.  Float
    setpoints compare to 0.05 degC, the resolution of common thermostats.
    """
    if isinstance(command, LightCommand) and isinstance(state, LightState):
        if command.on is not None and state.on != command.on:
            return False
        if command.on is False:
            return True  # brightness of a light that is off is not reported reliably
        if command.brightness is not None and (
            state.brightness is None or abs(state.brightness - command.brightness) > 1
        ):
            return False  # 0-254 <-> 0-100 round trips lose up to one percent
        if command.color_temp_k is not None and (
            state.color_temp_k is None or abs(state.color_temp_k - command.color_temp_k) > 30
        ):
            return False  # mired conversion loses a few kelvin
        if command.color_xy is not None and (
            state.color_xy is None or not xy_close(state.color_xy, command.color_xy)
        ):
            return False  # a bulb reports its own gamut's nearest colour, rounded
        return True
    if isinstance(command, ClimateCommand) and isinstance(state, ClimateState):
        if command.mode is not None and state.mode != command.mode:
            return False
        if command.target_c is not None and (
            state.target_c is None or abs(state.target_c - command.target_c) > 0.05
        ):
            return False
        return True
    if isinstance(command, LockCommand) and isinstance(state, LockState):
        return state.locked == command.locked
    return False


def unsatisfied_fields(state: DeviceState, command: Command) -> dict[str, object]:
    """Each field of ``command`` that ``state`` does not show -> the value it holds."""
    out: dict[str, object] = {}
    for name, wanted in iter_fields(command):
        if not hasattr(state, name):
            continue  # a command-only field (on_time_s): not reported back
        single = type(command)(**{name: wanted})  # type: ignore[arg-type]
        if not command_satisfied(state, single):
            held = getattr(state, name)
            out[name] = held.value if isinstance(held, StrEnum) else held
    return out


def clamped_error(device_id: str, state: DeviceState, command: Command) -> DeviceClamped:
    """The error for a device that answered with other values than asked."""
    held = unsatisfied_fields(state, command)
    asked = dict(iter_fields(command))
    parts = [
        f"{name} clamped to {value} (asked {_plain(asked.get(name))})"
        for name, value in held.items()
    ]
    return DeviceClamped(f"{device_id}: {'; '.join(parts) or 'answered otherwise'}", held)


def _plain(value: object) -> object:
    return value.value if isinstance(value, StrEnum) else value


Listener: TypeAlias = Callable[[DeviceSnapshot], None]


class Device(ABC):
    """One physical device, as a driver exposes it.

    Drivers update state through :meth:`_publish`; listeners (the edge core)
    are called synchronously on the event loop for each change and must not
    block.
    """

    def __init__(self, device_id: str, kind: DeviceKind) -> None:
        self.device_id = device_id
        self.kind = kind
        self._snapshot = DeviceSnapshot(
            device_id, kind, Availability.UNKNOWN, None, EMPTY_STATE[kind]
        )
        self._listeners: list[Listener] = []
        self._report_listeners: list[Listener] = []
        self._changed = asyncio.Event()
        self._notified = self._snapshot  # what listeners were last told
        self._deadband: dict[str, float] = {}

    def snapshot(self) -> DeviceSnapshot:
        return self._snapshot

    def subscribe(self, listener: Listener, *, every_report: bool = False) -> Callable[[], None]:
        """Call ``listener`` on every change (news, see :meth:`_publish`), or
        with ``every_report`` on every report even within the deadband (the
        heater guard: hard_max_c is checked on each reading).  Returns a
        function that unsubscribes."""
        listeners = self._report_listeners if every_report else self._listeners
        listeners.append(listener)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                listeners.remove(listener)

        return unsubscribe

    @abstractmethod
    async def send(self, command: Command, *, timeout: float = 5.0, force: bool = False) -> None:
        """Send ``command`` and return once it is confirmed.

        ``force``: send even to a device marked offline (a safety off is sent
        best-effort: "offline" may be a stale verdict).

        Confirmed means: the device reported a state that satisfies the
        command (MQTT) or the registers read back to the written values
        (Modbus).  Raises :class:`drivers.errors.DeviceUnavailable` when the
        device is known offline (unless ``force``), :class:`drivers.errors.DeviceTimeout` when no
        confirmation arrives in ``timeout`` seconds,
        :class:`drivers.errors.DeviceRejected` when the device refused it and
        :class:`drivers.errors.TransportError` for I/O failure.
        """

    # -- change detection ----------------------------------------------------
    def set_deadband(self, deadband: Mapping[str, float]) -> None:
        """Per-field deadband for analogue values (``{"current_c": 0.2}``; for
        sensors the value's name): a reading within the deadband of the value
        last passed to listeners is kept in the snapshot but is not news."""
        self._deadband = dict(deadband)

    def _is_news(self, new: DeviceSnapshot) -> bool:
        """True when ``new`` differs from what listeners last saw, beyond the
        deadband; ``last_seen`` alone is never news."""
        old = self._notified
        if new.availability != old.availability or type(new.state) is not type(old.state):
            return True
        if new.state == old.state:
            return False
        if not self._deadband:
            return True
        if isinstance(new.state, SensorState) and isinstance(old.state, SensorState):
            pairs = _sensor_pairs(old.state, new.state)
        else:
            pairs = [(n, getattr(old.state, n), getattr(new.state, n)) for n in _slots(new.state)]
        return any(_differs(a, b, self._deadband.get(name, 0.0)) for name, a, b in pairs)

    # -- for drivers -------------------------------------------------------
    def _publish(
        self,
        *,
        state: DeviceState | None = None,
        availability: Availability | None = None,
        seen: bool = True,
    ) -> None:
        """Record what the device reported.  The snapshot always holds the
        latest report; listeners hear of it only when it is news (a change of
        state or availability beyond the deadband): a poll that reads the same
        values costs no write, no WebSocket message and no MQTT publish."""
        snap = self._snapshot
        new = replace(
            snap,
            state=state if state is not None else snap.state,
            availability=availability if availability is not None else snap.availability,
            last_seen=datetime.now(UTC) if seen else snap.last_seen,
        )
        self._snapshot = new
        # Waiters (command confirmation) look at every report, news or not.
        self._changed.set()
        self._changed = asyncio.Event()
        for listener in list(self._report_listeners):
            listener(new)
        if not self._is_news(new):
            return
        self._notified = new
        for listener in list(self._listeners):
            listener(new)

    async def _wait_for(self, predicate: Callable[[DeviceSnapshot], bool], timeout: float) -> bool:
        """Wait until ``predicate(snapshot)`` holds; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self._snapshot):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            event = self._changed
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return predicate(self._snapshot)
        return True


def _slots(obj: object) -> tuple[str, ...]:
    return tuple(getattr(obj, "__slots__", ()))


def _sensor_pairs(old: SensorState, new: SensorState) -> list[tuple[str, object, object]]:
    names = set(old.values) | set(new.values)
    return [(n, old.values.get(n), new.values.get(n)) for n in sorted(names)]


def _differs(old: object, new: object, deadband: float) -> bool:
    if old == new:
        return False
    if deadband <= 0 or isinstance(old, bool) or isinstance(new, bool):
        return True
    if isinstance(old, int | float) and isinstance(new, int | float):
        return abs(new - old) >= deadband
    return True  # appeared, vanished or not a number


def iter_fields(obj: object) -> Iterator[tuple[str, object]]:
    """(name, value) of a command or state dataclass, skipping unset fields."""
    for name in getattr(obj, "__slots__", ()):
        value = getattr(obj, name)
        if value is not None:
            yield name, value
