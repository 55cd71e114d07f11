"""Configuration models for Modbus buses and the devices on them.

A site lists its buses (one per TCP gateway or serial line) and its Modbus
devices; each device names its bus by id and maps the typed state fields of
its kind onto registers.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from drivers.config import ID_PATTERN, DeviceConfigBase, StrictModel
from drivers.model import ClimateMode, DeviceKind

Table = Literal["coil", "discrete_input", "holding", "input"]
Dtype = Literal["bool", "int16", "uint16", "int32", "uint32", "float32"]

BIT_TABLES: frozenset[str] = frozenset({"coil", "discrete_input"})
WRITABLE_TABLES: frozenset[str] = frozenset({"coil", "holding"})
DTYPE_WORDS: dict[str, int] = {
    "bool": 1,
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
}

# Field names a device of each kind may map; sensors take any name.
KIND_FIELDS: dict[DeviceKind, frozenset[str] | None] = {
    DeviceKind.LIGHT: frozenset({"on", "brightness", "color_temp_k"}),
    # on_time_s: a device-side countdown register (device_timer = "countdown_register").
    DeviceKind.CLIMATE: frozenset({"mode", "target_c", "current_c", "humidity", "on_time_s"}),
    DeviceKind.LOCK: frozenset({"locked", "door_open", "jammed"}),
    DeviceKind.SENSOR: None,
}

DEFAULT_MODE_VALUES: dict[ClimateMode, int] = {
    ClimateMode.OFF: 0,
    ClimateMode.HEAT: 1,
    ClimateMode.COOL: 2,
    ClimateMode.AUTO: 3,
}

# Modbus over serial line spec, 2.5.1.1: above 19200 baud use fixed 1.75 ms.
FIXED_GAP_ABOVE_BAUD = 19200
FIXED_GAP_MS = 1.75


def rtu_char_bits(bytesize: int, parity: str, stopbits: int) -> int:
    """Bits on the wire per character: start + data + parity + stop."""
    return 1 + bytesize + (0 if parity == "N" else 1) + stopbits


def default_inter_frame_gap_ms(baudrate: int, bytesize: int, parity: str, stopbits: int) -> float:
    """3.5 character times, or the spec's fixed 1.75 ms above 19200 baud."""
    if baudrate > FIXED_GAP_ABOVE_BAUD:
        return FIXED_GAP_MS
    return 3.5 * rtu_char_bits(bytesize, parity, stopbits) * 1000.0 / baudrate


class _BusBase(StrictModel):
    id: str = Field(pattern=ID_PATTERN, description="Bus id that devices refer to.")
    timeout_s: float = Field(
        0.5,
        gt=0,
        le=10,
        description=(
            "Per-request answer timeout. Short, because a dead slave costs one "
            "timeout of wire time for every device on the bus."
        ),
    )
    merge_gap: int = Field(
        8,
        ge=0,
        le=100,
        description="Read across gaps of up to this many unused registers/bits to save requests.",
    )
    reconnect_max_s: float = Field(
        30.0, gt=0, le=600, description="Upper bound of the reconnect backoff, seconds."
    )
    max_silent_requests: int = Field(
        20,
        ge=1,
        le=10000,
        description=(
            "Close and reopen the link after this many unanswered requests in a row "
            "(no slave at all answered, so the link itself is suspect)."
        ),
    )


class ModbusTcpBusConfig(_BusBase):
    """A Modbus TCP gateway or device."""

    type: Literal["tcp"] = Field(description="Modbus TCP.")
    host: str = Field(min_length=1, description="Gateway host name or address.")
    port: int = Field(502, ge=1, le=65535, strict=True, description="Gateway TCP port.")


class ModbusRtuBusConfig(_BusBase):
    """A Modbus RTU serial line (RS-485)."""

    type: Literal["rtu"] = Field(description="Modbus RTU over a serial port.")
    port: str = Field(min_length=1, description='Serial device, e.g. "/dev/ttyUSB0".')
    baudrate: int = Field(19200, ge=300, le=921600, description="Line speed, bits/s.")
    parity: Literal["N", "E", "O"] = Field("E", description="Parity: N, E or O.")
    stopbits: Literal[1, 2] = Field(1, description="Stop bits: 1 or 2.")
    bytesize: Literal[7, 8] = Field(8, description="Data bits per character.")
    inter_frame_gap_ms: float | None = Field(
        None,
        ge=0,
        le=1000,
        description=(
            "Silence between frames. Default: 3.5 character times, 1.75 ms above 19200 baud."
        ),
    )

    @property
    def gap_s(self) -> float:
        ms = self.inter_frame_gap_ms
        if ms is None:
            ms = default_inter_frame_gap_ms(
                self.baudrate, self.bytesize, self.parity, self.stopbits
            )
        return ms / 1000.0


ModbusBusConfig = Annotated[ModbusTcpBusConfig | ModbusRtuBusConfig, Field(discriminator="type")]


class RegisterSpec(StrictModel):
    """Where one state field lives and how it is encoded."""

    table: Table = Field(description="coil, discrete_input, holding or input.")
    address: int = Field(ge=0, le=65535, description="Zero-based register or bit address.")
    dtype: Dtype = Field(
        "uint16", description="bool (bit tables only), int16, uint16, int32, uint32, float32."
    )
    scale: float = Field(1.0, description="value = raw * scale; 0.1 for tenths of a degree.")
    word_order: Literal["big", "little"] = Field(
        "big", description="32-bit values: big = high word first, little = low word first."
    )
    writable: bool = Field(
        False,
        description=(
            "Commands may write this register. Default: true on coil and holding "
            "(read/write tables), false on discrete_input and input."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _table_defaults(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        table = data.get("table")
        defaults: dict[str, object] = {}
        if table in BIT_TABLES and "dtype" not in data:
            defaults["dtype"] = "bool"
        if "writable" not in data:
            defaults["writable"] = table in WRITABLE_TABLES
        return {**defaults, **data}

    @model_validator(mode="after")
    def _consistent(self) -> RegisterSpec:
        is_bit_table = self.table in BIT_TABLES
        if is_bit_table and self.dtype != "bool":
            raise ValueError(f"dtype: {self.table} holds bits, dtype must be 'bool'")
        if not is_bit_table and self.dtype == "bool":
            raise ValueError(f"dtype: 'bool' needs table coil or discrete_input, not {self.table}")
        if self.writable and self.table not in WRITABLE_TABLES:
            raise ValueError(f"writable: {self.table} is read-only, only coil/holding are written")
        if self.scale == 0:
            raise ValueError("scale: must not be 0")
        if self.dtype == "bool" and self.scale != 1.0:
            raise ValueError("scale: bool values take no scale")
        if self.address + self.words - 1 > 65535:
            raise ValueError(f"address: {self.dtype} at {self.address} runs past 65535")
        return self

    @property
    def words(self) -> int:
        """Registers (or bits) this value occupies."""
        return DTYPE_WORDS[self.dtype]


class ModbusDeviceConfig(DeviceConfigBase):
    """One Modbus slave exposed as a typed device."""

    type: Literal["modbus"] = Field(description="Selects the Modbus driver.")
    bus: str = Field(pattern=ID_PATTERN, description="Id of the bus the device is on.")
    unit: int = Field(ge=1, le=247, description="Slave (unit) id, 1-247.")
    poll_interval_s: float = Field(
        1.0,
        ge=0.05,
        le=3600,
        description=(
            "Seconds between reads. Reads fall on whole multiples of it, so the devices "
            "of a bus with the same interval are read back to back, one wake-up a round."
        ),
    )
    registers: dict[str, RegisterSpec] = Field(
        min_length=1, description="State field name -> register holding it."
    )
    mode_values: dict[ClimateMode, int] = Field(
        default_factory=lambda: dict(DEFAULT_MODE_VALUES),
        description="Climate: register value of each mode (off, heat, cool, auto).",
    )

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> ModbusDeviceConfig:
        allowed = KIND_FIELDS[self.kind]
        if allowed is not None:
            unknown = sorted(set(self.registers) - allowed)
            if unknown:
                raise ValueError(
                    f"registers: {', '.join(unknown)} not a field of a {self.kind.value} "
                    f"(allowed: {', '.join(sorted(allowed))})"
                )
        values = list(self.mode_values.values())
        if len(set(values)) != len(values):
            raise ValueError("mode_values: two modes share one register value")
        mode_spec = self.registers.get("mode")
        if self.kind is DeviceKind.CLIMATE and mode_spec is not None:
            if mode_spec.table in BIT_TABLES:
                raise ValueError("registers.mode: the mode needs a word register, not a bit")
            if mode_spec.dtype == "float32" or mode_spec.scale != 1.0:
                raise ValueError("registers.mode: the mode register must be an unscaled integer")
        self._no_overlaps()
        self._heater_observable()
        return self

    def _heater_observable(self) -> None:
        """The heater guard must see the temperature and the mode and be able to
        switch the heater off; a register map without them is refused."""
        if not self.heater:
            if "on_time_s" in self.registers:
                raise ValueError("registers.on_time_s: a countdown register is for heaters only")
            return
        who = f"heater {self.id!r}"
        if "current_c" not in self.registers:
            raise ValueError(f"{who}: registers.current_c is required (the guard must see it)")
        mode = self.registers.get("mode")
        if mode is None or not mode.writable:
            raise ValueError(
                f"{who}: a writable registers.mode is required (the guard must see and "
                "switch it off)"
            )
        if ClimateMode.OFF not in self.mode_values:
            raise ValueError(f"{who}: mode_values needs an 'off' value")
        if self.device_timer == "on_time":
            raise ValueError(
                f"{who}: device_timer 'on_time' is for MQTT devices; use 'countdown_register'"
            )
        countdown = self.registers.get("on_time_s")
        if self.device_timer == "countdown_register" and (
            countdown is None or not countdown.writable
        ):
            raise ValueError(
                f"{who}: device_timer 'countdown_register' needs a writable registers.on_time_s"
            )
        if countdown is not None and self.device_timer != "countdown_register":
            raise ValueError(
                f"{who}: registers.on_time_s is mapped: set device_timer = 'countdown_register'"
            )

    def _no_overlaps(self) -> None:
        taken: dict[tuple[str, int], str] = {}
        for name, spec in self.registers.items():
            for offset in range(spec.words):
                key = (spec.table, spec.address + offset)
                if key in taken:
                    raise ValueError(
                        f"registers.{name}: {spec.table} {key[1]} is already used by "
                        f"registers.{taken[key]}"
                    )
                taken[key] = name
