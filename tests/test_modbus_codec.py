"""Pure codec and config tests for the Modbus driver (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from drivers.errors import UnsupportedCommand
from drivers.modbus.codec import (
    CodecError,
    ReadRequest,
    decode_block,
    decode_value,
    encode_command,
    encode_value,
    plan_reads,
    state_from_fields,
)
from drivers.modbus.config import (
    DEFAULT_MODE_VALUES,
    ModbusBusConfig,
    ModbusDeviceConfig,
    ModbusRtuBusConfig,
    ModbusTcpBusConfig,
    RegisterSpec,
)
from drivers.model import (
    ClimateCommand,
    ClimateMode,
    ClimateState,
    DeviceKind,
    LightCommand,
    LightState,
    LockState,
    SensorState,
)


def spec(**kw: Any) -> RegisterSpec:
    kw.setdefault("table", "holding")
    kw.setdefault("address", 0)
    return RegisterSpec(**kw)


# -- values <-> words ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "value", "words"),
    [
        ({"dtype": "uint16"}, 65535, [0xFFFF]),
        ({"dtype": "int16"}, -1, [0xFFFF]),
        ({"dtype": "int16"}, -32768, [0x8000]),
        ({"dtype": "int16", "scale": 0.1}, 37.5, [375]),
        ({"dtype": "int16", "scale": 0.1}, -2.5, [0xFFE7]),
        ({"dtype": "uint32"}, 0x12345678, [0x1234, 0x5678]),
        ({"dtype": "uint32", "word_order": "little"}, 0x12345678, [0x5678, 0x1234]),
        ({"dtype": "int32"}, -2, [0xFFFF, 0xFFFE]),
        ({"dtype": "int32", "word_order": "little"}, -70000, [0xEE90, 0xFFFE]),
        ({"dtype": "float32"}, 1.5, [0x3FC0, 0x0000]),
        ({"dtype": "float32", "word_order": "little"}, 1.5, [0x0000, 0x3FC0]),
        ({"dtype": "float32", "scale": 0.5}, 3.0, [0x40C0, 0x0000]),
        ({"table": "coil", "dtype": "bool"}, True, [True]),
        ({"table": "coil"}, False, [False]),
    ],
)
def test_encode_and_decode_every_dtype(kw: dict[str, Any], value: float, words: list[int]) -> None:
    s = spec(**kw)
    assert encode_value(s, value) == words
    decoded = decode_value(s, words)
    assert decoded == pytest.approx(value)
    assert type(decoded) is type(value) or s.scale != 1.0 or s.dtype == "float32"


@given(st.integers(-0x8000_0000, 0x7FFF_FFFF), st.sampled_from(["big", "little"]))
def test_int32_round_trips(value: int, order: str) -> None:
    s = spec(dtype="int32", word_order=order)
    words = encode_value(s, value)
    assert all(0 <= w <= 0xFFFF for w in words)
    assert decode_value(s, words) == value


@given(st.integers(0, 0xFFFF))
def test_every_uint16_word_decodes_as_int16_and_back(word: int) -> None:
    s = spec(dtype="int16")
    assert encode_value(s, decode_value(s, [word])) == [word]


@pytest.mark.parametrize(
    ("kw", "value"),
    [
        ({"dtype": "uint16"}, -1),
        ({"dtype": "uint16"}, 65536),
        ({"dtype": "int16", "scale": 0.1}, 3276.8),
        ({"dtype": "uint32"}, 2**32),
        ({"dtype": "float32"}, 1e40),
        ({"dtype": "float32"}, float("nan")),
    ],
)
def test_out_of_range_values_are_refused(kw: dict[str, Any], value: float) -> None:
    with pytest.raises(CodecError):
        encode_value(spec(**kw), value)


def test_decode_needs_the_right_word_count() -> None:
    with pytest.raises(CodecError, match="2 word"):
        decode_value(spec(dtype="uint32"), [1])


# -- planner -------------------------------------------------------------------


def test_planner_merges_contiguous_registers_into_one_request() -> None:
    regs = {
        "a": spec(address=10),
        "b": spec(address=11, dtype="uint32"),
        "c": spec(address=13, dtype="float32"),
    }
    assert plan_reads(regs, merge_gap=0) == [ReadRequest("holding", 10, 5, ("a", "b", "c"))]


def test_planner_merges_small_gaps_only_and_splits_tables() -> None:
    regs = {
        "a": spec(address=0),
        "b": spec(address=5),  # gap of 4
        "c": spec(address=40),  # gap of 34: new request
        "d": spec(table="input", address=0),
        "e": spec(table="coil", address=3),
        "f": spec(table="coil", address=1),
    }
    plan = plan_reads(regs, merge_gap=8)
    assert plan == [
        ReadRequest("coil", 1, 3, ("f", "e")),
        ReadRequest("holding", 0, 6, ("a", "b")),
        ReadRequest("holding", 40, 1, ("c",)),
        ReadRequest("input", 0, 1, ("d",)),
    ]
    assert len(plan_reads(regs, merge_gap=0)) == 6  # coils 1 and 3 split too


def test_planner_respects_the_125_register_limit() -> None:
    regs = {f"r{i}": spec(address=i * 10) for i in range(30)}  # spans 291 registers
    plan = plan_reads(regs, merge_gap=10)
    assert all(r.count <= 125 for r in plan)
    assert sum(len(r.fields) for r in plan) == 30
    assert len(plan) == 3


def test_planner_respects_the_2000_bit_limit() -> None:
    regs = {"a": spec(table="coil", address=0), "b": spec(table="coil", address=2000)}
    assert len(plan_reads(regs, merge_gap=100)) == 2
    regs["b"] = spec(table="coil", address=1999)
    assert plan_reads(regs, merge_gap=2000)[0].count == 2000


def test_decode_block_slices_each_field() -> None:
    regs = {"t": spec(address=1, dtype="int16", scale=0.1), "n": spec(address=3, dtype="uint32")}
    (req,) = plan_reads(regs)
    out = decode_block(req, [375, 0, 0, 7], regs)  # address 1..4
    assert out["t"] == pytest.approx(37.5)
    assert out["n"] == 7
    with pytest.raises(CodecError, match="returned 2 of 4"):
        decode_block(req, [1, 2], regs)


# -- typed state and commands --------------------------------------------------


def test_state_from_fields_for_every_kind() -> None:
    modes = DEFAULT_MODE_VALUES
    assert state_from_fields(DeviceKind.LIGHT, {"on": 1, "brightness": 42.4}, modes) == LightState(
        on=True, brightness=42
    )
    climate = state_from_fields(DeviceKind.CLIMATE, {"mode": 2, "target_c": 36.5}, modes)
    assert climate == ClimateState(mode=ClimateMode.COOL, target_c=36.5)
    assert state_from_fields(DeviceKind.CLIMATE, {"mode": 9}, modes) == ClimateState()
    assert state_from_fields(DeviceKind.LOCK, {"locked": True}, modes) == LockState(locked=True)
    assert state_from_fields(DeviceKind.SENSOR, {"co2": 415}, modes) == SensorState({"co2": 415.0})


def test_encode_command_uses_mode_values_and_scale() -> None:
    regs = {
        "mode": spec(address=0, writable=True),
        "target_c": spec(address=1, dtype="int16", scale=0.1, writable=True),
    }
    writes = encode_command(
        ClimateCommand(mode=ClimateMode.HEAT, target_c=38.0), regs, {ClimateMode.HEAT: 7}
    )
    assert [(w.field, w.address, w.values) for w in writes] == [
        ("mode", 0, [7]),
        ("target_c", 1, [380]),
    ]


def test_encode_command_names_the_field_it_cannot_write() -> None:
    regs = {"on": spec(table="coil", address=0, writable=False)}
    with pytest.raises(UnsupportedCommand, match="on: register is not writable"):
        encode_command(LightCommand(on=True), regs, DEFAULT_MODE_VALUES)
    with pytest.raises(UnsupportedCommand, match="brightness: no register"):
        encode_command(LightCommand(brightness=5), regs, DEFAULT_MODE_VALUES)
    regs = {"brightness": spec(address=0, dtype="int16", writable=True, scale=0.001)}
    with pytest.raises(UnsupportedCommand, match=r"brightness: .*outside int16"):
        encode_command(LightCommand(brightness=100), regs, DEFAULT_MODE_VALUES)


# -- config validation ---------------------------------------------------------


def device(**kw: Any) -> ModbusDeviceConfig:
    base: dict[str, Any] = {
        "type": "modbus",
        "id": "spa",
        "kind": "climate",
        "bus": "gw",
        "unit": 1,
        "registers": {"target_c": {"table": "holding", "address": 1, "writable": True}},
    }
    base.update(kw)
    return ModbusDeviceConfig.model_validate(base)


@pytest.mark.parametrize(
    ("registers", "message"),
    [
        ({"on": {"table": "coil", "address": 0, "dtype": "uint16"}}, "dtype"),
        ({"on": {"table": "holding", "address": 0, "dtype": "bool"}}, "dtype"),
        ({"on": {"table": "input", "address": 0, "writable": True}}, "writable"),
        ({"on": {"table": "discrete_input", "address": 0, "writable": True}}, "writable"),
        ({"on": {"table": "holding", "address": 65535, "dtype": "uint32"}}, "address"),
        ({"on": {"table": "holding", "address": 70000}}, "address"),
        ({"on": {"table": "holding", "address": 0, "scale": 0}}, "scale"),
        ({"on": {"table": "holding", "address": 0, "colour": 1}}, "colour"),
        ({"mode": {"table": "holding", "address": 0}}, "mode"),
        (
            {
                "on": {"table": "holding", "address": 0, "dtype": "uint32"},
                "brightness": {"table": "holding", "address": 1},
            },
            "registers.brightness: holding 1 is already used by registers.on",
        ),
    ],
)
def test_bad_register_specs_are_rejected_naming_the_field(
    registers: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        device(kind="light", registers=registers)


def test_table_defaults_for_dtype_and_writable() -> None:
    cfg = device(kind="lock", registers={"locked": {"table": "coil", "address": 3}})
    assert cfg.registers["locked"].dtype == "bool"
    assert cfg.registers["locked"].writable is True
    assert spec(table="holding").writable is True
    assert spec(table="input").writable is False
    assert spec(table="discrete_input").writable is False
    assert spec(table="holding", writable=False).writable is False


def test_climate_config_checks_mode_register_and_values() -> None:
    cfg = device(registers=ThermostatRegs)
    assert cfg.mode_values[ClimateMode.AUTO] == 3
    with pytest.raises(ValidationError, match="mode_values: two modes share"):
        device(registers=ThermostatRegs, mode_values={"off": 0, "heat": 0})
    with pytest.raises(ValidationError, match=r"registers\.mode: the mode needs a word register"):
        device(registers={"mode": {"table": "coil", "address": 0}})
    with pytest.raises(ValidationError, match="unit"):
        device(unit=248)


ThermostatRegs = {
    "mode": {"table": "holding", "address": 0, "writable": True},
    "target_c": {"table": "holding", "address": 1, "dtype": "int16", "scale": 0.1},
}


def test_sensor_takes_any_field_name() -> None:
    cfg = device(kind="sensor", registers={"co2_ppm": {"table": "input", "address": 0}})
    assert "co2_ppm" in cfg.registers


def test_bus_union_is_discriminated_and_derives_the_rtu_gap() -> None:
    adapter: TypeAdapter[ModbusBusConfig] = TypeAdapter(ModbusBusConfig)
    tcp = adapter.validate_python({"type": "tcp", "id": "gw", "host": "10.0.0.5"})
    assert isinstance(tcp, ModbusTcpBusConfig) and tcp.port == 502
    slow = adapter.validate_python({"type": "rtu", "id": "rs485", "port": "/dev/ttyUSB0"})
    assert isinstance(slow, ModbusRtuBusConfig)
    # 19200 8E1: 11 bits a character, 3.5 characters = 2.005 ms
    assert slow.gap_s == pytest.approx(3.5 * 11 / 19200)
    fast = adapter.validate_python({"type": "rtu", "id": "x", "port": "/dev/x", "baudrate": 115200})
    assert isinstance(fast, ModbusRtuBusConfig) and fast.gap_s == pytest.approx(0.00175)
    nine_six = ModbusRtuBusConfig(type="rtu", id="y", port="/dev/y", baudrate=9600, parity="N")
    assert nine_six.gap_s == pytest.approx(3.5 * 10 / 9600)
    with pytest.raises(ValidationError, match="parity"):
        adapter.validate_python({"type": "rtu", "id": "z", "port": "/dev/z", "parity": "X"})
    with pytest.raises(ValidationError, match="tag 'udp'"):
        adapter.validate_python({"type": "udp", "id": "z"})
