"""Pure Modbus codec: values <-> 16-bit words, read planning, typed state.

No I/O here.  Register words are ints 0-65535, bits are bools; values above
this layer are human units (value = raw * scale).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from drivers.errors import UnsupportedCommand
from drivers.modbus.config import BIT_TABLES, WRITABLE_TABLES, RegisterSpec, Table
from drivers.model import (
    ClimateMode,
    ClimateState,
    Command,
    DeviceKind,
    DeviceState,
    LightState,
    LockState,
    SensorState,
    iter_fields,
)

Value = bool | int | float
Words = list[int] | list[bool]

# Modbus application protocol spec, 6.1-6.4: the most one read may return.
MAX_READ_WORDS = 125
MAX_READ_BITS = 2000

_INT_RANGES: dict[str, tuple[int, int]] = {
    "int16": (-0x8000, 0x7FFF),
    "uint16": (0, 0xFFFF),
    "int32": (-0x8000_0000, 0x7FFF_FFFF),
    "uint32": (0, 0xFFFF_FFFF),
}


class CodecError(ValueError):
    """A value does not fit its register (message names the register)."""


def encode_value(spec: RegisterSpec, value: Value) -> Words:
    """Words (or one bit) that store ``value`` in ``spec``."""
    if spec.dtype == "bool":
        return [bool(value)]
    raw_float = float(value) / spec.scale
    if not math.isfinite(raw_float):
        raise CodecError(f"{value!r} is not a finite number")
    if spec.dtype == "float32":
        try:
            packed = struct.pack(">f", raw_float)
        except OverflowError as exc:
            raise CodecError(f"{value!r} does not fit a float32") from exc
        high, low = struct.unpack(">HH", packed)
        return _order([high, low], spec.word_order)
    raw = round(raw_float)
    lowest, highest = _INT_RANGES[spec.dtype]
    if not lowest <= raw <= highest:
        raise CodecError(f"{value!r} (raw {raw}) is outside {spec.dtype} range {lowest}..{highest}")
    if spec.words == 1:
        return [raw & 0xFFFF]
    unsigned = raw & 0xFFFF_FFFF
    return _order([unsigned >> 16, unsigned & 0xFFFF], spec.word_order)


def decode_value(spec: RegisterSpec, words: Sequence[int] | Sequence[bool]) -> Value:
    """The value stored in ``words`` (exactly ``spec.words`` long)."""
    if len(words) != spec.words:
        raise CodecError(f"{spec.dtype} needs {spec.words} word(s), got {len(words)}")
    if spec.dtype == "bool":
        return bool(words[0])
    ints = [int(w) & 0xFFFF for w in words]
    if spec.words == 2:
        high, low = _order(ints, spec.word_order)  # the swap is its own inverse
        if spec.dtype == "float32":
            raw: float = struct.unpack(">f", struct.pack(">HH", high, low))[0]
            # A float32 holds ~7 significant digits: 21.2 is stored as
            # 21.200000762939453; report what the device meant.
            return _tidy(float(f"{raw:.7g}") * spec.scale, spec.scale)
        raw_int = (high << 16) | low
        if spec.dtype == "int32" and raw_int & 0x8000_0000:
            raw_int -= 0x1_0000_0000
    else:
        raw_int = ints[0]
        if spec.dtype == "int16" and raw_int & 0x8000:
            raw_int -= 0x1_0000
    if spec.scale == 1.0:
        return raw_int
    return _tidy(raw_int * spec.scale, spec.scale)


def _tidy(value: float, scale: float) -> float:
    """``value`` rounded to the resolution ``scale`` gives (212 * 0.1 is
    21.200000000000003 in binary floating point; the device meant 21.2)."""
    if not math.isfinite(value):
        return value
    text = repr(float(scale))
    decimals = len(text.split(".", 1)[1]) if "." in text and "e" not in text else 6
    return round(value, max(decimals, 1) if scale != 1.0 else 6)


def _order(pair: list[int], word_order: str) -> list[int]:
    return pair if word_order == "big" else [pair[1], pair[0]]


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One read on the wire, covering one or more fields of one table."""

    table: Table
    address: int
    count: int
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """One write on the wire for one field (coil or holding)."""

    field: str
    table: Table
    address: int
    values: Words


def plan_reads(registers: Mapping[str, RegisterSpec], merge_gap: int = 8) -> list[ReadRequest]:
    """Group fields into the fewest reads per table.

    Fields whose addresses are contiguous, or separated by at most
    ``merge_gap`` unused addresses, share one read as long as it stays within
    the protocol's 125 registers / 2000 bits.  Reading a few unused
    registers costs far less than another round trip, on RTU above all.
    """
    by_table: dict[str, list[tuple[str, RegisterSpec]]] = {}
    for name, spec in registers.items():
        by_table.setdefault(spec.table, []).append((name, spec))
    plan: list[ReadRequest] = []
    for table in ("coil", "discrete_input", "holding", "input"):
        entries = sorted(by_table.get(table, []), key=lambda item: item[1].address)
        limit = MAX_READ_BITS if table in BIT_TABLES else MAX_READ_WORDS
        start = end = -1
        names: list[str] = []
        for name, spec in entries:
            spec_end = spec.address + spec.words
            if names and spec.address - end <= merge_gap and spec_end - start <= limit:
                end = max(end, spec_end)
                names.append(name)
                continue
            if names:
                plan.append(ReadRequest(table, start, end - start, tuple(names)))
            start, end, names = spec.address, spec_end, [name]
        if names:
            plan.append(ReadRequest(table, start, end - start, tuple(names)))
    return plan


def decode_block(
    request: ReadRequest,
    values: Sequence[int] | Sequence[bool],
    registers: Mapping[str, RegisterSpec],
) -> dict[str, Value]:
    """Field values from the answer to ``request``."""
    if len(values) < request.count:
        raise CodecError(
            f"{request.table} read at {request.address} returned {len(values)} of "
            f"{request.count} values"
        )
    out: dict[str, Value] = {}
    start = request.address
    for name in request.fields:
        spec = registers[name]
        offset = spec.address - start
        if spec.dtype == "uint16" and spec.scale == 1.0:
            # The common register, decoded inline: this runs for every field
            # of every poll (20 such registers: 16 -> 5 us a poll).
            out[name] = int(values[offset]) & 0xFFFF
        else:
            out[name] = decode_value(spec, values[offset : offset + spec.words])
    return out


def state_from_fields(
    kind: DeviceKind, fields: Mapping[str, Value], mode_values: Mapping[ClimateMode, int]
) -> DeviceState:
    """Typed state from decoded field values; unmapped fields stay None."""
    if kind is DeviceKind.LIGHT:
        return LightState(
            on=_opt_bool(fields.get("on")),
            brightness=_opt_int(fields.get("brightness")),
            color_temp_k=_opt_int(fields.get("color_temp_k")),
        )
    if kind is DeviceKind.CLIMATE:
        raw_mode = fields.get("mode")
        mode: ClimateMode | None = None
        if raw_mode is not None:
            by_value = {v: m for m, v in mode_values.items()}
            mode = by_value.get(int(raw_mode))  # an unknown mode value reads as "not known"
        return ClimateState(
            mode=mode,
            target_c=_opt_float(fields.get("target_c")),
            current_c=_opt_float(fields.get("current_c")),
            humidity=_opt_float(fields.get("humidity")),
        )
    if kind is DeviceKind.LOCK:
        return LockState(
            locked=_opt_bool(fields.get("locked")),
            door_open=_opt_bool(fields.get("door_open")),
            jammed=_opt_bool(fields.get("jammed")),
        )
    return SensorState(values={name: float(v) for name, v in fields.items()})


def encode_command(
    command: Command,
    registers: Mapping[str, RegisterSpec],
    mode_values: Mapping[ClimateMode, int],
) -> list[WriteRequest]:
    """Writes that carry out ``command``; UnsupportedCommand names the bad field."""
    writes: list[WriteRequest] = []
    for name, value in iter_fields(command):
        spec = registers.get(name)
        if spec is None:
            raise UnsupportedCommand(f"{name}: no register is mapped for this field")
        if not spec.writable or spec.table not in WRITABLE_TABLES:
            raise UnsupportedCommand(f"{name}: register is not writable")
        if isinstance(value, ClimateMode):
            if value not in mode_values:
                raise UnsupportedCommand(f"mode: {value.value} has no entry in mode_values")
            raw: Value = mode_values[value]
        elif isinstance(value, bool | int | float):
            raw = value
        else:
            raise UnsupportedCommand(f"{name}: cannot encode {value!r}")
        try:
            words = encode_value(spec, raw)
        except CodecError as exc:
            raise UnsupportedCommand(f"{name}: {exc}") from exc
        writes.append(WriteRequest(name, spec.table, spec.address, words))
    return writes


def _opt_bool(v: Value | None) -> bool | None:
    return None if v is None else bool(v)


def _opt_int(v: Value | None) -> int | None:
    return None if v is None else round(v)


def _opt_float(v: Value | None) -> float | None:
    return None if v is None else float(v)
