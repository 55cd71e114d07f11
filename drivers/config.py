"""Configuration shared by every device driver.

Each driver defines its device model by subclassing :class:`DeviceConfigBase`
with a ``type`` literal; the site config combines them into one discriminated
union, so ``type`` selects the driver.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from drivers.model import DeviceKind

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
DeviceTimer = Literal["none", "on_time", "countdown_register"]


# Analogue fields a deadband may name, per kind; a sensor's values are named
# by its register map or payload, so any name goes (None).
DEADBAND_FIELDS: dict[DeviceKind, frozenset[str] | None] = {
    DeviceKind.LIGHT: frozenset({"brightness", "color_temp_k"}),
    DeviceKind.CLIMATE: frozenset({"target_c", "current_c", "humidity"}),
    DeviceKind.LOCK: frozenset(),
    DeviceKind.SENSOR: None,
}


class LocatedError(ValueError):
    """A cross-field problem that knows where it is: ``loc`` is the key path
    (relative to the model whose validator raised it) of the offending value,
    so the site config's error message can name its file line."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


class StrictModel(BaseModel):
    """Base for config models: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceLimits(StrictModel):
    """Bounds the edge enforces for every caller before anything is sent."""

    min_brightness: int = Field(0, ge=0, le=100, description="Lowest brightness, percent.")
    max_brightness: int = Field(100, ge=0, le=100, description="Highest brightness, percent.")
    min_color_temp_k: int = Field(2000, ge=1000, le=10000, description="Warmest colour, K.")
    max_color_temp_k: int = Field(6500, ge=1000, le=10000, description="Coolest colour, K.")
    allow_color: bool = Field(
        True,
        description=(
            "Lights: false keeps the light to white (colour temperature only); a colour "
            "command is refused."
        ),
    )
    min_target_c: float = Field(16.0, ge=-10, le=130, description="Lowest setpoint, degC.")
    max_target_c: float = Field(28.0, ge=-10, le=130, description="Highest setpoint, degC.")
    hard_max_c: float | None = Field(
        None,
        ge=-10,
        le=130,
        description=(
            "Heaters (sauna, steam): a measured temperature above this turns the "
            "heater off at once, whatever any caller asked."
        ),
    )
    auto_off_minutes: float | None = Field(
        None,
        gt=0,
        le=24 * 60,
        description="Heaters: turn off after this long in a heating mode.",
    )
    unknown_temp_grace_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description=(
            "Heaters: a heating heater whose temperature has been unknown (not reported, "
            "offline) this long counts as unsafe and is turned off."
        ),
    )

    @model_validator(mode="after")
    def _ordered(self) -> DeviceLimits:
        if self.min_brightness > self.max_brightness:
            raise ValueError("min_brightness must not exceed max_brightness")
        if self.min_color_temp_k > self.max_color_temp_k:
            raise ValueError("min_color_temp_k must not exceed max_color_temp_k")
        if self.min_target_c > self.max_target_c:
            raise ValueError("min_target_c must not exceed max_target_c")
        if self.hard_max_c is not None and self.max_target_c > self.hard_max_c:
            raise ValueError("max_target_c must not exceed hard_max_c")
        return self


class XyColor(StrictModel):
    """A colour as CIE 1931 chromaticity (what Zigbee2MQTT reports)."""

    x: float = Field(ge=0, le=1, description="CIE x.")
    y: float = Field(ge=0, le=1, description="CIE y.")


class RgbColor(StrictModel):
    """A colour as sRGB channels."""

    r: int = Field(ge=0, le=255, description="Red, 0-255.")
    g: int = Field(ge=0, le=255, description="Green, 0-255.")
    b: int = Field(ge=0, le=255, description="Blue, 0-255.")


HexColor = Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")]
# "#rrggbb", {x, y} or {r, g, b}: drivers.color.parse_color makes it xy.
ColorValue = HexColor | XyColor | RgbColor


class DeviceConfigBase(StrictModel):
    """Fields every device has, whatever its driver."""

    id: str = Field(pattern=ID_PATTERN, description="Unique within the room.")
    kind: DeviceKind = Field(description="light, climate, lock or sensor.")
    name: str | None = Field(None, max_length=80, description="Label shown to people.")
    heater: bool = Field(
        False, description="A sauna or steam heater: hard_max_c and auto_off_minutes apply."
    )
    limits: DeviceLimits = Field(
        default_factory=DeviceLimits,
        description="Bounds every caller is held to (see rooms.devices.limits).",
    )
    deadband: dict[str, float] = Field(
        default_factory=dict,
        description=(
            "Analogue values: field -> smallest change that counts as news, e.g. "
            "{ current_c = 0.2, humidity = 1.0 } (for a sensor, its value names). A "
            "reading closer than this to the value last stored and sent is kept as the "
            "device's current value but is not stored, sent to tablets or republished. "
            "Fields without an entry count every change."
        ),
    )
    device_timer: DeviceTimer = Field(
        "none",
        description=(
            "Heaters: the protection the device itself has when this daemon is dead. "
            "'on_time': every heat command carries the remaining auto-off time as "
            "Zigbee2MQTT/Tasmota-style on_time (seconds); 'countdown_register': every heat "
            "command writes it to the Modbus register mapped as registers.on_time_s; 'none': "
            "the device has neither (validate-config warns; rely on the heater's own timer)."
        ),
    )

    @model_validator(mode="after")
    def _deadband_fields(self) -> DeviceConfigBase:
        allowed = DEADBAND_FIELDS.get(self.kind)
        for name, value in self.deadband.items():
            if allowed is not None and name not in allowed:
                raise LocatedError(
                    ("deadband", name),
                    f"a {self.kind.value} has no analogue field {name!r} "
                    f"(one of: {', '.join(sorted(allowed))})",
                )
            if not value >= 0:
                raise LocatedError(("deadband", name), "a deadband is a number >= 0")
        return self

    @model_validator(mode="after")
    def _heater_rules(self) -> DeviceConfigBase:
        if self.heater:
            if self.kind is not DeviceKind.CLIMATE:
                raise ValueError("heater = true needs kind = 'climate'")
            if self.limits.hard_max_c is None or self.limits.auto_off_minutes is None:
                raise ValueError("a heater needs limits.hard_max_c and limits.auto_off_minutes")
        elif self.device_timer != "none":
            raise ValueError("device_timer applies to heaters (heater = true) only")
        return self
