"""Per-device limits, enforced for every caller before anything is sent.

Tablets, staff, the MQTT scene topic and scenes from the config all pass
through :func:`check_command`; a violation names the field and nothing goes
to the device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from drivers.color import parse_color
from drivers.config import DeviceLimits
from drivers.model import (
    ClimateCommand,
    ClimateMode,
    Command,
    DeviceKind,
    DeviceState,
    LightCommand,
    LightState,
    LockCommand,
    iter_fields,
)
from edge.errors import InvalidCommand, LimitViolation

_COMMAND_TYPES: dict[DeviceKind, type[Command]] = {
    DeviceKind.LIGHT: LightCommand,
    DeviceKind.CLIMATE: ClimateCommand,
    DeviceKind.LOCK: LockCommand,
}


def _violation(
    kind: DeviceKind, limits: DeviceLimits, values: Mapping[str, Any]
) -> tuple[str, str] | None:
    """(field, message) of the first value outside ``limits``, else None."""
    if kind is DeviceKind.LIGHT:
        b = values.get("brightness")
        if b is not None and not limits.min_brightness <= b <= limits.max_brightness:
            return "brightness", (
                f"{b} % is outside {limits.min_brightness}-{limits.max_brightness} %"
            )
        k = values.get("color_temp_k")
        if k is not None and not limits.min_color_temp_k <= k <= limits.max_color_temp_k:
            return "color_temp_k", (
                f"{k} K is outside {limits.min_color_temp_k}-{limits.max_color_temp_k} K"
            )
        colour = values.get("color", values.get("color_xy"))
        if colour is not None and not limits.allow_color:
            return "color", "this light is kept to white (limits.allow_color = false)"
    elif kind is DeviceKind.CLIMATE:
        t = values.get("target_c")
        if t is not None and not limits.min_target_c <= t <= limits.max_target_c:
            return "target_c", (
                f"{t} degC is outside {limits.min_target_c}-{limits.max_target_c} degC"
            )
    return None


def check_values(kind: DeviceKind, limits: DeviceLimits, values: Mapping[str, Any]) -> str | None:
    """A message for the first value outside ``limits`` (config validation), else None."""
    found = _violation(kind, limits, values)
    return None if found is None else f"{found[0]}: {found[1]}"


def build_command(kind: DeviceKind, values: Mapping[str, Any]) -> Command:
    """A typed command for ``kind`` from plain values (scene actions, API bodies)."""
    command_type = _COMMAND_TYPES.get(kind)
    if command_type is None:
        raise InvalidCommand("kind", f"a {kind} takes no commands")
    allowed = set(command_type.__slots__)
    given = {k: v for k, v in values.items() if v is not None}
    if command_type is LightCommand and "color" in given:
        # "#rrggbb", {x, y} or {r, g, b} (API body, scene): the model's colour is xy.
        try:
            given["color_xy"] = parse_color(given.pop("color"))
        except ValueError as exc:
            raise InvalidCommand("color", str(exc)) from None
        if "color_temp_k" in given:
            raise InvalidCommand("color", "give a colour or color_temp_k, not both")
    unknown = sorted(set(given) - allowed)
    if "on_time_s" in given:
        unknown.insert(0, "on_time_s")  # set by the heater guard only, never by a caller
    if unknown:
        raise InvalidCommand(unknown[0], f"does not apply to a {kind}")
    if not given:
        raise InvalidCommand("command", "sets nothing")
    if "mode" in given and not isinstance(given["mode"], ClimateMode):
        try:
            given["mode"] = ClimateMode(given["mode"])
        except ValueError:
            raise InvalidCommand(
                "mode", f"must be one of {[m.value for m in ClimateMode]}"
            ) from None
    if command_type is LockCommand and not isinstance(given.get("locked"), bool):
        raise InvalidCommand("locked", "must be true or false")
    return command_type(**given)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def effective_command(limits: DeviceLimits, command: Command, state: DeviceState) -> Command:
    """``command`` with the values it would restore made explicit and clamped.

    ``{"on": true}`` brings a light back at its previous level and colour,
    which may be outside the limits (set before the limits were, or at the
    device itself): the effective state after any command stays within them.
    """
    if not isinstance(command, LightCommand) or command.on is not True:
        return command
    previous = state if isinstance(state, LightState) else LightState()
    changes: dict[str, Any] = {}
    if command.brightness is None:
        level = previous.brightness
        if level is None:
            # Unknown level: it may come back at 100 %, so cap it when capped.
            if limits.max_brightness < 100:
                changes["brightness"] = limits.max_brightness
        elif not limits.min_brightness <= level <= limits.max_brightness:
            changes["brightness"] = _clamp(level, limits.min_brightness, limits.max_brightness)
    kelvin = previous.color_temp_k
    outside = kelvin is not None and not (
        limits.min_color_temp_k <= kelvin <= limits.max_color_temp_k
    )
    if command.color_temp_k is None and kelvin is not None and outside:
        changes["color_temp_k"] = _clamp(kelvin, limits.min_color_temp_k, limits.max_color_temp_k)
    return dataclasses.replace(command, **changes) if changes else command


def check_command(kind: DeviceKind, limits: DeviceLimits, command: Command) -> None:
    """Raise InvalidCommand/LimitViolation unless ``command`` fits the device."""
    expected = _COMMAND_TYPES.get(kind)
    if expected is None or not isinstance(command, expected):
        raise InvalidCommand("command", f"a {type(command).__name__} does not fit a {kind}")
    values = dict(iter_fields(command))
    if not values:
        raise InvalidCommand("command", "sets nothing")
    found = _violation(kind, limits, values)
    if found is not None:
        raise LimitViolation(*found)
