"""Wire formats of the MQTT drivers, as pure functions (no I/O).

Zigbee2MQTT: commands are JSON on ``<base>/<name>/set``, state is JSON on
``<base>/<name>`` (partial reports are merged onto the previous state),
availability on ``<base>/<name>/availability`` is ``{"state": "online"}`` or,
in the legacy style, plain ``online``/``offline``.  Brightness is 0-254,
colour temperature is in mireds.

Home Assistant MQTT JSON light schema: ``{"state": "ON", "brightness": N,
"color_temp": mireds}`` with ``N`` in ``0..brightness_scale``.

Above this module values are in human units (percent, kelvin, degC); every
malformed payload raises :class:`MqttCodecError` naming the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from drivers.color import parse_color, xy_to_rgb
from drivers.errors import UnsupportedCommand
from drivers.model import (
    Availability,
    ClimateCommand,
    ClimateMode,
    ClimateState,
    Command,
    DeviceKind,
    DeviceState,
    LightCommand,
    LightState,
    LockCommand,
    LockState,
    SensorState,
)
from drivers.mqtt.errors import MqttCodecError

Z2M_BRIGHTNESS_MAX = 254
# Z2M lock_state values; anything that is neither locked nor unlocked is a jam.
LOCK_STATES = {"locked": True, "unlocked": False}
JAMMED_LOCK_STATES = frozenset({"not_fully_locked", "jammed", "unknown_fault"})
LOCKED_WORDS = {"LOCK": True, "LOCKED": True, "UNLOCK": False, "UNLOCKED": False}

# Fields sensors report that are bookkeeping, not measurements.
SENSOR_IGNORED = frozenset({"linkquality", "last_seen"})


# -- unit conversions --------------------------------------------------------
def percent_to_level(percent: int, scale: int) -> int:
    """0-100 percent to ``0..scale``; any non-zero percent stays non-zero."""
    if not 0 <= percent <= 100:
        raise ValueError(f"brightness: {percent} is outside 0-100")
    level = round(percent * scale / 100)
    return max(level, 1) if percent > 0 else 0


def level_to_percent(level: int, scale: int) -> int:
    """``0..scale`` to 0-100 percent; any non-zero level stays non-zero."""
    if not 0 <= level <= scale:
        raise MqttCodecError(f"brightness: {level} is outside 0-{scale}")
    percent = round(level * 100 / scale)
    return max(percent, 1) if level > 0 else 0


def kelvin_to_mireds(kelvin: int) -> int:
    if kelvin <= 0:
        raise ValueError(f"color_temp_k: {kelvin} must be positive")
    return round(1_000_000 / kelvin)


def mireds_to_kelvin(mireds: int) -> int:
    if mireds <= 0:
        raise MqttCodecError(f"color_temp: {mireds} mireds must be positive")
    return round(1_000_000 / mireds)


# -- helpers -------------------------------------------------------------------
def _json_object(payload: bytes) -> dict[str, Any]:
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MqttCodecError(f"payload is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MqttCodecError(f"payload is JSON {type(data).__name__}, expected an object")
    return data


def _number(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MqttCodecError(f"{key}: expected a number, got {value!r}")
    return float(value)


def _integer(data: Mapping[str, Any], key: str) -> int | None:
    value = _number(data, key)
    return None if value is None else round(value)


def _on_off(data: Mapping[str, Any], key: str) -> bool | None:
    value = data.get(key)
    if value is None:
        return None
    if value not in ("ON", "OFF"):
        raise MqttCodecError(f"{key}: expected 'ON' or 'OFF', got {value!r}")
    return bool(value == "ON")


def _dump(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


# -- availability ---------------------------------------------------------------
def decode_z2m_availability(payload: bytes) -> Availability:
    """``{"state": "online"}`` or legacy ``online``; an empty (cleared) payload is UNKNOWN."""
    text = payload.decode("utf-8", "replace").strip()
    if not text:
        return Availability.UNKNOWN
    state = _json_object(payload).get("state") if text.startswith("{") else text
    if state == "online":
        return Availability.ONLINE
    if state == "offline":
        return Availability.OFFLINE
    raise MqttCodecError(f"availability: expected 'online' or 'offline', got {state!r}")


def decode_plain_availability(payload: bytes, available: str, not_available: str) -> Availability:
    text = payload.decode("utf-8", "replace").strip()
    if not text:
        return Availability.UNKNOWN
    if text == available:
        return Availability.ONLINE
    if text == not_available:
        return Availability.OFFLINE
    raise MqttCodecError(
        f"availability: expected {available!r} or {not_available!r}, got {text[:40]!r}"
    )


# -- Zigbee2MQTT commands -----------------------------------------------------------
def encode_z2m_command(kind: DeviceKind, command: Command) -> bytes:
    """JSON for ``<base>/<name>/set``; UnsupportedCommand if it does not fit ``kind``."""
    body: dict[str, Any] = {}
    if kind is DeviceKind.LIGHT and isinstance(command, LightCommand):
        if command.on is not None:
            body["state"] = "ON" if command.on else "OFF"
        if command.brightness is not None:
            body["brightness"] = percent_to_level(command.brightness, Z2M_BRIGHTNESS_MAX)
        if command.color_temp_k is not None:
            body["color_temp"] = kelvin_to_mireds(command.color_temp_k)
        if command.color_xy is not None:
            body["color"] = {"x": command.color_xy[0], "y": command.color_xy[1]}
    elif kind is DeviceKind.CLIMATE and isinstance(command, ClimateCommand):
        if command.mode is not None:
            body["system_mode"] = command.mode.value
        if command.target_c is not None:
            body["occupied_heating_setpoint"] = command.target_c
        if command.on_time_s is not None:
            body["on_time"] = command.on_time_s
    elif kind is DeviceKind.LOCK and isinstance(command, LockCommand):
        body["state"] = "LOCK" if command.locked else "UNLOCK"
    else:
        raise UnsupportedCommand(f"{type(command).__name__} does not fit a {kind.value} device")
    if not body:
        raise UnsupportedCommand(f"{type(command).__name__} sets no field")
    return _dump(body)


def z2m_get_request(kind: DeviceKind) -> bytes | None:
    """Payload for ``<base>/<name>/get`` asking the device to report; None for sensors."""
    fields = {
        DeviceKind.LIGHT: ("state", "brightness", "color_temp", "color"),
        DeviceKind.CLIMATE: ("system_mode", "occupied_heating_setpoint", "local_temperature"),
        DeviceKind.LOCK: ("state",),
    }.get(kind)
    return None if fields is None else _dump(dict.fromkeys(fields, ""))


# -- Zigbee2MQTT state ------------------------------------------------------------------
def decode_z2m_state(kind: DeviceKind, payload: bytes, previous: DeviceState) -> DeviceState:
    """Merge a (possibly partial) Z2M state report onto ``previous``."""
    data = _json_object(payload)
    if kind is DeviceKind.LIGHT:
        assert isinstance(previous, LightState)
        return _decode_light(data, previous, Z2M_BRIGHTNESS_MAX)
    if kind is DeviceKind.LOCK:
        assert isinstance(previous, LockState)
        return _decode_lock(data, previous)
    if kind is DeviceKind.CLIMATE:
        assert isinstance(previous, ClimateState)
        return _decode_climate(data, previous)
    assert isinstance(previous, SensorState)
    return _decode_sensor(data, previous)


def _decode_light(data: Mapping[str, Any], previous: LightState, scale: int) -> LightState:
    state = previous
    on = _on_off(data, "state")
    if on is not None:
        state = replace(state, on=on)
    level = _integer(data, "brightness")
    if level is not None:
        state = replace(state, brightness=level_to_percent(level, scale))
    # color_temp is null while a bulb is in colour (xy/hs) mode: keep the last value.
    mireds = _integer(data, "color_temp")
    if mireds is not None:
        state = replace(state, color_temp_k=mireds_to_kelvin(mireds))
    color = data.get("color")
    if isinstance(color, Mapping):
        xy = {k: color[k] for k in ("x", "y") if k in color}
        rgb = {k: color[k] for k in ("r", "g", "b") if k in color}
        try:
            if len(xy) == 2:
                state = replace(state, color_xy=parse_color(xy))
            elif len(rgb) == 3:
                state = replace(state, color_xy=parse_color(rgb))
            # hue/saturation only: no xy to report, keep the last one
        except ValueError as exc:
            raise MqttCodecError(f"color: {exc}") from None
    elif color is not None:
        raise MqttCodecError(f"color: expected an object, got {color!r}")
    return state


def _decode_lock(data: Mapping[str, Any], previous: LockState) -> LockState:
    state = previous
    word = data.get("state")
    if word is not None:
        if word not in LOCKED_WORDS:
            raise MqttCodecError(f"state: expected LOCK/LOCKED/UNLOCK/UNLOCKED, got {word!r}")
        state = replace(state, locked=LOCKED_WORDS[word])
    lock_state = data.get("lock_state")
    if lock_state is not None:
        # lock_state is what the mechanism measured; it wins over the commanded state.
        if lock_state in LOCK_STATES:
            state = replace(state, locked=LOCK_STATES[lock_state], jammed=False)
        elif lock_state in JAMMED_LOCK_STATES:
            state = replace(state, locked=False, jammed=True)
        else:
            raise MqttCodecError(f"lock_state: unknown value {lock_state!r}")
    contact = data.get("contact")
    if contact is not None:
        if not isinstance(contact, bool):
            raise MqttCodecError(f"contact: expected true or false, got {contact!r}")
        state = replace(state, door_open=not contact)  # contact false: the door is open
    return state


def _decode_climate(data: Mapping[str, Any], previous: ClimateState) -> ClimateState:
    state = previous
    mode = data.get("system_mode")
    if mode is not None:
        try:
            state = replace(state, mode=ClimateMode(mode))
        except ValueError:
            raise MqttCodecError(
                f"system_mode: expected one of off/heat/cool/auto, got {mode!r}"
            ) from None
    target = _number(data, "occupied_heating_setpoint")
    if target is None:
        target = _number(data, "current_heating_setpoint")
    if target is not None:
        state = replace(state, target_c=target)
    current = _number(data, "local_temperature")
    if current is not None:
        state = replace(state, current_c=current)
    humidity = _number(data, "humidity")
    if humidity is not None:
        state = replace(state, humidity=humidity)
    return state


def _decode_sensor(data: Mapping[str, Any], previous: SensorState) -> SensorState:
    values = dict(previous.values)
    for key, value in data.items():
        if key in SENSOR_IGNORED:
            continue
        if isinstance(value, bool):
            values[key] = 1.0 if value else 0.0  # occupancy, water_leak, ...
        elif isinstance(value, int | float) and math.isfinite(value):
            values[key] = float(value)
        # strings and objects (update info, device details) are not measurements
    return SensorState(values=values)


# -- Home Assistant JSON light schema --------------------------------------------------
def encode_ha_json_light(command: Command, brightness_scale: int, color_mode: str = "rgb") -> bytes:
    """HA JSON schema command; a colour goes as ``{"r","g","b"}`` (``color_mode``
    "rgb", what ESPHome and most firmware take) or ``{"x","y"}`` ("xy")."""
    if not isinstance(command, LightCommand):
        raise UnsupportedCommand(f"{type(command).__name__} does not fit a light")
    body: dict[str, Any] = {}
    if command.on is not None:
        body["state"] = "ON" if command.on else "OFF"
    elif any(v is not None for v in (command.brightness, command.color_temp_k, command.color_xy)):
        body["state"] = "ON"  # the schema requires state; setting a level means on
    if command.brightness is not None:
        body["brightness"] = percent_to_level(command.brightness, brightness_scale)
    if command.color_temp_k is not None:
        body["color_temp"] = kelvin_to_mireds(command.color_temp_k)
    if command.color_xy is not None:
        x, y = command.color_xy
        if color_mode == "xy":
            body["color"] = {"x": x, "y": y}
        else:
            r, g, b = xy_to_rgb(x, y)
            body["color"] = {"r": r, "g": g, "b": b}
    if not body:
        raise UnsupportedCommand("LightCommand sets no field")
    return _dump(body)


def decode_ha_json_light(payload: bytes, previous: LightState, brightness_scale: int) -> LightState:
    return _decode_light(_json_object(payload), previous, brightness_scale)
