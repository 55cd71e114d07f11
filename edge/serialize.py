"""Plain-JSON views of typed device data, for storage, MQTT and the LAN API."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from enum import Enum
from typing import Any

from drivers.model import (
    Availability,
    ClimateMode,
    ClimateState,
    DeviceKind,
    DeviceSnapshot,
    DeviceState,
    LightState,
    LockState,
    SensorState,
)


def state_to_dict(state: DeviceState) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in asdict(state).items():
        out[key] = value.value if isinstance(value, Enum) else value
    if isinstance(state, SensorState):
        out["values"] = dict(state.values)
    return out


def state_from_dict(kind: DeviceKind, data: dict[str, Any]) -> DeviceState:
    if kind is DeviceKind.LIGHT:
        xy = data.get("color_xy")  # a JSON list: the model holds a tuple
        return LightState(**{**data, "color_xy": tuple(xy) if xy is not None else None})
    if kind is DeviceKind.CLIMATE:
        mode = data.get("mode")
        return ClimateState(**{**data, "mode": ClimateMode(mode) if mode else None})
    if kind is DeviceKind.LOCK:
        return LockState(**data)
    return SensorState(values=dict(data.get("values", {})))


def snapshot_to_dict(snap: DeviceSnapshot) -> dict[str, Any]:
    return {
        "device_id": snap.device_id,
        "kind": snap.kind.value,
        "availability": snap.availability.value,
        "last_seen": snap.last_seen.isoformat() if snap.last_seen else None,
        "state": state_to_dict(snap.state),
    }


def snapshot_from_dict(data: dict[str, Any]) -> DeviceSnapshot:
    kind = DeviceKind(data["kind"])
    return DeviceSnapshot(
        device_id=data["device_id"],
        kind=kind,
        availability=Availability(data["availability"]),
        last_seen=datetime.fromisoformat(data["last_seen"]) if data.get("last_seen") else None,
        state=state_from_dict(kind, data["state"]),
    )
