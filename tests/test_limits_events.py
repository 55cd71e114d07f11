"""Limits checked before anything is sent; the event bus never blocks publishers."""

from __future__ import annotations

import asyncio

import pytest

from drivers.config import DeviceConfigBase, DeviceLimits
from drivers.model import ClimateCommand, ClimateMode, DeviceKind, LightCommand, LockCommand
from edge.errors import InvalidCommand, LimitViolation
from edge.events import EventBus
from edge.limits import build_command, check_command, check_values

LIMITS = DeviceLimits(max_brightness=80, min_target_c=18, max_target_c=26)


def test_light_within_limits_passes() -> None:
    check_command(DeviceKind.LIGHT, LIMITS, LightCommand(on=True, brightness=80))


@pytest.mark.parametrize(
    ("kind", "command", "field"),
    [
        (DeviceKind.LIGHT, LightCommand(brightness=81), "brightness"),
        (DeviceKind.LIGHT, LightCommand(color_temp_k=9000), "color_temp_k"),
        (DeviceKind.CLIMATE, ClimateCommand(target_c=26.5), "target_c"),
        (DeviceKind.CLIMATE, ClimateCommand(target_c=10), "target_c"),
    ],
)
def test_out_of_limits_names_the_field(kind: DeviceKind, command: object, field: str) -> None:
    with pytest.raises(LimitViolation) as info:
        check_command(kind, LIMITS, command)  # type: ignore[arg-type]
    assert info.value.field == field


def test_wrong_kind_and_empty_commands_are_refused() -> None:
    with pytest.raises(InvalidCommand):
        check_command(DeviceKind.LOCK, LIMITS, LightCommand(on=True))
    with pytest.raises(InvalidCommand, match="sets nothing"):
        check_command(DeviceKind.LIGHT, LIMITS, LightCommand())
    with pytest.raises(InvalidCommand):
        check_command(DeviceKind.SENSOR, LIMITS, LockCommand(locked=True))


def test_build_command_from_values() -> None:
    assert build_command(DeviceKind.CLIMATE, {"mode": "heat", "target_c": 22}) == ClimateCommand(
        mode=ClimateMode.HEAT, target_c=22
    )
    with pytest.raises(InvalidCommand) as info:
        build_command(DeviceKind.LIGHT, {"target_c": 20})
    assert info.value.field == "target_c"
    with pytest.raises(InvalidCommand) as info:
        build_command(DeviceKind.CLIMATE, {"mode": "boil"})
    assert info.value.field == "mode"
    with pytest.raises(InvalidCommand) as info:
        build_command(DeviceKind.LOCK, {"locked": "yes"})
    assert info.value.field == "locked"


def test_check_values_message() -> None:
    assert check_values(DeviceKind.LIGHT, LIMITS, {"brightness": 50}) is None
    msg = check_values(DeviceKind.LIGHT, LIMITS, {"brightness": 95})
    assert msg is not None and msg.startswith("brightness")


def test_heater_needs_hard_max_and_auto_off() -> None:
    with pytest.raises(ValueError, match="hard_max_c"):
        DeviceConfigBase(id="h", kind=DeviceKind.CLIMATE, heater=True)
    with pytest.raises(ValueError, match="climate"):
        DeviceConfigBase(
            id="h",
            kind=DeviceKind.LIGHT,
            heater=True,
            limits=DeviceLimits(hard_max_c=95, auto_off_minutes=60),
        )
    with pytest.raises(ValueError, match="max_target_c"):
        DeviceLimits(max_target_c=100, hard_max_c=95)


async def test_event_bus_fan_out_and_slow_subscriber_drops_oldest() -> None:
    bus = EventBus()
    fast = bus.subscribe()
    slow = bus.subscribe(maxsize=3)
    only_alerts = bus.subscribe(types={"alert"})
    for i in range(5):
        bus.publish("device_state", {"i": i}, room_id="r")
    bus.publish("alert", {"message": "hot"})
    got = [(await fast.get()).data for _ in range(6)]
    assert got[:5] == [{"i": i} for i in range(5)]
    assert slow.dropped == 3
    assert [(await slow.get()).data for _ in range(3)] == [{"i": 3}, {"i": 4}, {"message": "hot"}]
    assert (await asyncio.wait_for(only_alerts.get(), 1)).type == "alert"
    with fast:
        pass
    assert bus.subscriber_count == 2
