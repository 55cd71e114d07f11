"""Pure codec tests: Zigbee2MQTT and HA JSON encode/decode, units, bad payloads."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import UnsupportedCommand
from drivers.model import (
    EMPTY_STATE,
    Availability,
    ClimateCommand,
    ClimateMode,
    ClimateState,
    DeviceKind,
    LightCommand,
    LightState,
    LockCommand,
    LockState,
    SensorState,
    command_satisfied,
)
from drivers.mqtt.codec import (
    decode_ha_json_light,
    decode_plain_availability,
    decode_z2m_availability,
    decode_z2m_state,
    encode_ha_json_light,
    encode_z2m_command,
    kelvin_to_mireds,
    level_to_percent,
    mireds_to_kelvin,
    percent_to_level,
    z2m_get_request,
)
from drivers.mqtt.errors import MqttCodecError


def js(data: object) -> bytes:
    return json.dumps(data).encode()


# -- units ------------------------------------------------------------------------
@given(st.integers(0, 100), st.sampled_from([254, 255, 1023, 65535]))
def test_brightness_round_trip_is_exact(percent: int, scale: int) -> None:
    level = percent_to_level(percent, scale)
    assert 0 <= level <= scale
    assert level_to_percent(level, scale) == percent


def test_brightness_edges() -> None:
    assert percent_to_level(100, 254) == 254
    assert percent_to_level(0, 254) == 0
    assert percent_to_level(1, 10) == 1  # a dim light is never sent as off
    assert level_to_percent(1, 254) == 1
    with pytest.raises(ValueError, match="brightness"):
        percent_to_level(101, 254)
    with pytest.raises(MqttCodecError, match="brightness"):
        level_to_percent(255, 254)


@given(st.integers(2000, 6500))
def test_color_temp_round_trip_within_model_tolerance(kelvin: int) -> None:
    back = mireds_to_kelvin(kelvin_to_mireds(kelvin))
    assert abs(back - kelvin) <= 30  # what command_satisfied accepts


def test_mireds_values() -> None:
    assert kelvin_to_mireds(2700) == 370
    assert mireds_to_kelvin(250) == 4000
    with pytest.raises(MqttCodecError, match="color_temp"):
        mireds_to_kelvin(0)


# -- Zigbee2MQTT commands ---------------------------------------------------------------
def test_z2m_light_command() -> None:
    body = json.loads(encode_z2m_command(DeviceKind.LIGHT, LightCommand(True, 50, 2700)))
    assert body == {"state": "ON", "brightness": 127, "color_temp": 370}
    assert json.loads(encode_z2m_command(DeviceKind.LIGHT, LightCommand(on=False))) == {
        "state": "OFF"
    }


def test_z2m_climate_and_lock_commands() -> None:
    cmd = ClimateCommand(mode=ClimateMode.HEAT, target_c=22.5)
    assert json.loads(encode_z2m_command(DeviceKind.CLIMATE, cmd)) == {
        "system_mode": "heat",
        "occupied_heating_setpoint": 22.5,
    }
    assert json.loads(encode_z2m_command(DeviceKind.LOCK, LockCommand(True))) == {"state": "LOCK"}
    assert json.loads(encode_z2m_command(DeviceKind.LOCK, LockCommand(False))) == {
        "state": "UNLOCK"
    }


def test_z2m_command_must_fit_kind() -> None:
    with pytest.raises(UnsupportedCommand):
        encode_z2m_command(DeviceKind.LOCK, LightCommand(on=True))
    with pytest.raises(UnsupportedCommand):
        encode_z2m_command(DeviceKind.SENSOR, LockCommand(True))
    with pytest.raises(UnsupportedCommand, match="no field"):
        encode_z2m_command(DeviceKind.LIGHT, LightCommand())


def test_get_request() -> None:
    assert json.loads(z2m_get_request(DeviceKind.LOCK) or b"") == {"state": ""}
    assert z2m_get_request(DeviceKind.SENSOR) is None


# -- Zigbee2MQTT state ----------------------------------------------------------------------
def test_z2m_light_state_and_partial_merge() -> None:
    full = decode_z2m_state(
        DeviceKind.LIGHT,
        js({"state": "ON", "brightness": 254, "color_temp": 250, "linkquality": 90}),
        LightState(),
    )
    assert full == LightState(on=True, brightness=100, color_temp_k=4000)
    partial = decode_z2m_state(DeviceKind.LIGHT, js({"brightness": 127}), full)
    assert partial == LightState(on=True, brightness=50, color_temp_k=4000)
    # color_temp null (bulb in colour mode) keeps the last known value
    assert decode_z2m_state(DeviceKind.LIGHT, js({"color_temp": None}), partial) == partial


def test_command_satisfied_through_the_codec() -> None:
    cmd = LightCommand(on=True, brightness=37, color_temp_k=3100)
    sent = json.loads(encode_z2m_command(DeviceKind.LIGHT, cmd))
    sent["state"] = "ON"
    state = decode_z2m_state(DeviceKind.LIGHT, js(sent), LightState())
    assert command_satisfied(state, cmd)


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        ({"state": "LOCKED"}, LockState(locked=True)),
        ({"state": "LOCK"}, LockState(locked=True)),
        ({"state": "UNLOCKED", "contact": False}, LockState(locked=False, door_open=True)),
        ({"lock_state": "locked", "contact": True}, LockState(True, False, False)),
        ({"state": "LOCK", "lock_state": "not_fully_locked"}, LockState(False, None, True)),
    ],
)
def test_z2m_lock_state(report: dict[str, object], expected: LockState) -> None:
    assert decode_z2m_state(DeviceKind.LOCK, js(report), LockState()) == expected


def test_z2m_climate_state() -> None:
    state = decode_z2m_state(
        DeviceKind.CLIMATE,
        js(
            {
                "system_mode": "heat",
                "occupied_heating_setpoint": 23,
                "local_temperature": 19.5,
                "humidity": 41.2,
            }
        ),
        ClimateState(),
    )
    assert state == ClimateState(ClimateMode.HEAT, 23.0, 19.5, 41.2)
    later = decode_z2m_state(DeviceKind.CLIMATE, js({"local_temperature": 20}), state)
    assert later == ClimateState(ClimateMode.HEAT, 23.0, 20.0, 41.2)


def test_z2m_sensor_state_keeps_numbers_and_booleans() -> None:
    first = decode_z2m_state(
        DeviceKind.SENSOR,
        js({"temperature": 21.5, "occupancy": True, "linkquality": 80, "update": {"state": "x"}}),
        SensorState(),
    )
    assert first == SensorState({"temperature": 21.5, "occupancy": 1.0})
    second = decode_z2m_state(DeviceKind.SENSOR, js({"humidity": 40}), first)
    assert second == SensorState({"temperature": 21.5, "occupancy": 1.0, "humidity": 40.0})


@pytest.mark.parametrize(
    ("kind", "payload", "field"),
    [
        (DeviceKind.LIGHT, b"not json", "JSON"),
        (DeviceKind.LIGHT, b"\xff\xfe", "JSON"),
        (DeviceKind.LIGHT, b"[1, 2]", "object"),
        (DeviceKind.LIGHT, js({"state": "MAYBE"}), "state"),
        (DeviceKind.LIGHT, js({"brightness": "high"}), "brightness"),
        (DeviceKind.LIGHT, js({"brightness": True}), "brightness"),
        (DeviceKind.LIGHT, js({"brightness": 999}), "brightness"),
        (DeviceKind.LIGHT, js({"color_temp": -5}), "color_temp"),
        (DeviceKind.LOCK, js({"state": "OPEN"}), "state"),
        (DeviceKind.LOCK, js({"lock_state": "exploded"}), "lock_state"),
        (DeviceKind.LOCK, js({"contact": "yes"}), "contact"),
        (DeviceKind.CLIMATE, js({"system_mode": "fan_only"}), "system_mode"),
        (DeviceKind.CLIMATE, js({"local_temperature": "warm"}), "local_temperature"),
        (DeviceKind.CLIMATE, b'{"humidity": NaN}', "humidity"),
    ],
)
def test_malformed_state_is_a_codec_error(kind: DeviceKind, payload: bytes, field: str) -> None:
    with pytest.raises(MqttCodecError, match=field):
        decode_z2m_state(kind, payload, EMPTY_STATE[kind])


# -- availability -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"state":"online"}', Availability.ONLINE),
        (b'{"state": "offline"}', Availability.OFFLINE),
        (b"online", Availability.ONLINE),
        (b"offline\n", Availability.OFFLINE),
        (b"", Availability.UNKNOWN),
    ],
)
def test_z2m_availability_both_styles(payload: bytes, expected: Availability) -> None:
    assert decode_z2m_availability(payload) is expected


@pytest.mark.parametrize("payload", [b"maybe", b'{"state": "asleep"}', b"{broken", b'{"x":1}'])
def test_bad_availability(payload: bytes) -> None:
    with pytest.raises(MqttCodecError):
        decode_z2m_availability(payload)


def test_plain_availability_custom_payloads() -> None:
    assert decode_plain_availability(b"up", "up", "down") is Availability.ONLINE
    assert decode_plain_availability(b"down", "up", "down") is Availability.OFFLINE
    with pytest.raises(MqttCodecError, match="availability"):
        decode_plain_availability(b"online", "up", "down")


# -- HA JSON light ------------------------------------------------------------------------------
def test_ha_json_encode_with_scale() -> None:
    body = json.loads(encode_ha_json_light(LightCommand(True, 50, 4000), 1023))
    assert body == {"state": "ON", "brightness": 512, "color_temp": 250}
    # a level without on/off still carries the schema's required state
    assert json.loads(encode_ha_json_light(LightCommand(brightness=100), 255)) == {
        "state": "ON",
        "brightness": 255,
    }
    with pytest.raises(UnsupportedCommand):
        encode_ha_json_light(LockCommand(True), 255)


def test_ha_json_decode_round_trip() -> None:
    cmd = LightCommand(True, 73, 2900)
    state = decode_ha_json_light(encode_ha_json_light(cmd, 100), LightState(), 100)
    assert command_satisfied(state, cmd)
    assert decode_ha_json_light(b'{"state":"OFF"}', state, 100).on is False
    with pytest.raises(MqttCodecError, match="brightness"):
        decode_ha_json_light(b'{"state":"ON","brightness":101}', state, 100)
