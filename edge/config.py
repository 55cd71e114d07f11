"""Site configuration: one TOML file describing the building.

Parsed with stdlib ``tomllib`` and validated into frozen pydantic models that
reject unknown keys.  ``load_config`` raises :class:`edge.errors.ConfigError`
whose problems name the file, the line (located by :mod:`edge.tomlpos`) and
the key path of each error.
"""

from __future__ import annotations

import tomllib
import typing
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator

from drivers.config import ID_PATTERN, ColorValue, DeviceLimits, LocatedError, StrictModel
from drivers.modbus.config import ModbusBusConfig, ModbusDeviceConfig
from drivers.model import ClimateMode, DeviceKind
from drivers.mqtt.config import (
    HaJsonLightDeviceConfig,
    MqttBrokerConfig,
    Zigbee2MqttDeviceConfig,
)
from edge.alerts.config import AlertsConfig
from edge.api.settings import ApiSettings
from edge.door.config import DoorConfig, check_door_against_rooms
from edge.door.security import check_security_against_site
from edge.errors import ConfigError
from edge.ha_config import HomeAssistantConfig
from edge.opening_hours import OpeningHours
from edge.ops.retention import RetentionConfig
from edge.schedules_config import ScheduleSpec, check_schedules
from edge.supervisor import SupervisionConfig
from edge.tomlpos import locate
from sync.config import CloudSyncConfig

DeviceConfig = Annotated[
    Zigbee2MqttDeviceConfig | HaJsonLightDeviceConfig | ModbusDeviceConfig,
    Field(discriminator="type"),
]


LOGO_TYPES = {".svg": "image/svg+xml", ".png": "image/png"}


class SiteInfo(StrictModel):
    id: str = Field(pattern=ID_PATTERN, description="Site id, used in MQTT topics and sync.")
    name: str = Field(min_length=1, max_length=120, description="Name shown to staff.")
    timezone: str = Field("UTC", description="IANA time zone of the spa, e.g. America/New_York.")
    locale: str = Field(
        "en-US",
        pattern=r"^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$",
        description="BCP 47 locale of the spa, e.g. es-ES: its region sets how guest "
        "tablets write dates, times and numbers (their words follow the tablet's language).",
    )
    tax_rate: Decimal = Field(
        Decimal("0.08"), ge=0, lt=1, description="Sales tax rate for pickup orders (0.08 = 8 %)."
    )
    logo: Path | None = Field(
        None,
        description="The spa's logo on the guest tablets: an .svg or .png file on the "
        "controller (served at /site/logo, which needs no login); unset: the name alone.",
    )

    @field_validator("logo")
    @classmethod
    def _logo_kind(cls, value: Path | None) -> Path | None:
        if value is not None and value.suffix.lower() not in LOGO_TYPES:
            raise ValueError(f"a logo is an {' or '.join(LOGO_TYPES)} file, not {value.name!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class StorageConfig(StrictModel):
    data_dir: Path = Field(
        Path("/var/lib/coresync-edge"),
        description="Directory for the SQLite database and keys; created if missing.",
    )
    state_history_limit: int = Field(
        50_000,
        ge=100,
        le=10_000_000,
        description=(
            "Cap on raw device state history rows (the newest are kept); older history "
            "is kept per minute, see retention.state_history_raw_hours."
        ),
    )


class SceneAction(StrictModel):
    """What a scene sets on one device; only fields that fit the device's kind."""

    on: bool | None = Field(None, description="Light on/off.")
    brightness: int | None = Field(None, ge=0, le=100, description="Light brightness, percent.")
    color_temp_k: int | None = Field(None, ge=1000, le=10000, description="Light colour, K.")
    color: ColorValue | None = Field(
        None,
        description='Light colour: "#rrggbb", { x, y } (CIE) or { r, g, b }; or color_temp_k.',
    )
    mode: ClimateMode | None = Field(None, description="Climate mode: off, heat, cool, auto.")
    target_c: float | None = Field(None, ge=-10, le=130, description="Climate setpoint, degC.")
    locked: bool | None = Field(None, description="Lock: true locks, false unlocks.")


LIGHT_FIELDS = {"on", "brightness", "color_temp_k", "color"}
CLIMATE_FIELDS = {"mode", "target_c"}
LOCK_FIELDS = {"locked"}
FIELDS_FOR_KIND: dict[DeviceKind, set[str]] = {
    DeviceKind.LIGHT: LIGHT_FIELDS,
    DeviceKind.CLIMATE: CLIMATE_FIELDS,
    DeviceKind.LOCK: LOCK_FIELDS,
    DeviceKind.SENSOR: set(),
}


class SceneConfig(StrictModel):
    id: str = Field(pattern=ID_PATTERN, description="Scene id, unique within the room.")
    name: str = Field(min_length=1, max_length=80, description="Label on the tablet button.")
    devices: dict[str, SceneAction] = Field(
        min_length=1, description="Device id → what to set on it."
    )


class RoomConfig(StrictModel):
    id: str = Field(pattern=ID_PATTERN, description="Room id, used in topics and URLs.")
    name: str = Field(min_length=1, max_length=80, description="Room name shown to people.")
    devices: list[DeviceConfig] = Field(default_factory=list, description="Devices in the room.")
    scenes: list[SceneConfig] = Field(default_factory=list, description="Scenes of the room.")

    @model_validator(mode="after")
    def _consistent(self) -> RoomConfig:
        _no_duplicates([d.id for d in self.devices], "device id", ("devices", "id"))
        # Two devices both labelled "Ceiling" on one tablet cannot be told apart.
        names = [(d.name or "").strip().casefold() or f"\0{i}" for i, d in enumerate(self.devices)]
        _no_duplicates(
            names, "device name", ("devices", "name"), shown=[d.name for d in self.devices]
        )
        _no_duplicates([s.id for s in self.scenes], "scene id", ("scenes", "id"))
        by_id = {d.id: d for d in self.devices}
        for i, scene in enumerate(self.scenes):
            for device_id, action in scene.devices.items():
                device = by_id.get(device_id)
                if device is None:
                    raise LocatedError(
                        ("scenes", i, "devices", device_id),
                        f"scene {scene.id!r} names device {device_id!r}, which is not in "
                        f"room {self.id!r}",
                    )
                _check_action(scene.id, device_id, device.kind, device.limits, action)
        return self


class SiteConfig(StrictModel):
    site: SiteInfo = Field(description="Who and where this controller is.")
    storage: StorageConfig = Field(
        default_factory=StorageConfig, description="Where state is kept."
    )
    mqtt: MqttBrokerConfig | None = Field(
        None, description="MQTT broker; needed when any device uses an MQTT driver."
    )
    modbus_buses: list[ModbusBusConfig] = Field(
        default_factory=list, description="Modbus buses (TCP gateways and RS-485 serial ports)."
    )
    rooms: list[RoomConfig] = Field(min_length=1, description="Rooms and their devices.")
    api: ApiSettings = Field(
        default_factory=ApiSettings, description="LAN API for room tablets and staff."
    )
    door: DoorConfig | None = Field(
        None, description="Entrance door: face access, keypad PIN, consent retention."
    )
    cloud: CloudSyncConfig | None = Field(
        None,
        description="Cloud API to sync pickup orders and concierge requests with; "
        "unset for a stand-alone spa.",
    )
    supervision: SupervisionConfig = Field(
        default_factory=SupervisionConfig,
        description="Restart policy of the daemon's components (crash, backoff, budget).",
    )
    home_assistant: HomeAssistantConfig = Field(
        default_factory=HomeAssistantConfig,
        description="Home Assistant MQTT discovery of every room (docs/mqtt.md).",
    )
    retention: RetentionConfig = Field(
        default_factory=RetentionConfig,
        description="How long the growing tables (command log, audit log, door events, "
        "failed-login counters) are kept.",
    )
    opening_hours: OpeningHours | None = Field(
        None,
        description="When the spa is open, in the site's time zone, with holiday closures; "
        "used by the door's access rules and the scene schedules. Unset: always open.",
    )
    schedules: list[ScheduleSpec] = Field(
        default_factory=list,
        description="Scene schedules run by the controller with no network (pre-heat before "
        "opening, close for the night); managers add more on the dashboard.",
    )
    alerts: AlertsConfig | None = Field(
        None,
        description="Critical events sent to staff by e-mail and webhook; unset: alerts "
        "reach only the dashboard and /metrics.",
    )

    @model_validator(mode="after")
    def _cross_checks(self) -> SiteConfig:
        _no_duplicates([r.id for r in self.rooms], "room id", ("rooms", "id"))
        _no_duplicates([b.id for b in self.modbus_buses], "modbus bus id", ("modbus_buses", "id"))
        bus_ids = {b.id for b in self.modbus_buses}
        for r, room in enumerate(self.rooms):
            for d, device in enumerate(room.devices):
                if isinstance(device, ModbusDeviceConfig) and device.bus not in bus_ids:
                    raise LocatedError(
                        ("rooms", r, "devices", d, "bus"),
                        f"device {room.id}/{device.id} uses modbus bus {device.bus!r}, "
                        f"which is not among modbus_buses ({sorted(bus_ids) or 'none'})",
                    )
                if not isinstance(device, ModbusDeviceConfig) and self.mqtt is None:
                    raise LocatedError(
                        ("rooms", r, "devices", d, "type"),
                        f"device {room.id}/{device.id} uses MQTT but there is no [mqtt] section",
                    )
        if self.door is not None:
            check_door_against_rooms(self.door, self.rooms)
            check_security_against_site(self.door.security, self.opening_hours)
        self._check_home_assistant()
        check_schedules(self.schedules, self.rooms, self.opening_hours)
        return self

    def _check_home_assistant(self) -> None:
        locks = {
            f"{r.id}/{d.id}" for r in self.rooms for d in r.devices if d.kind is DeviceKind.LOCK
        }
        door = f"{self.door.room}/{self.door.lock}" if self.door is not None else None
        for i, ref in enumerate(self.home_assistant.lock_commands):
            where = ("home_assistant", "lock_commands", i)
            if ref not in locks:
                raise LocatedError(where, f"{ref!r} is not a lock of this site ({sorted(locks)})")
            if ref == door:
                raise LocatedError(
                    where,
                    f"{ref!r} is the [door] lock: it opens only through the door service "
                    "(face, PIN, staff remote unlock), which relocks it",
                )

    def room(self, room_id: str) -> RoomConfig | None:
        return next((r for r in self.rooms if r.id == room_id), None)


def _no_duplicates(
    ids: list[str],
    what: str,
    where: tuple[str, str],
    shown: list[str | None] | None = None,
) -> None:
    """Refuse a repeated id; the error points at the second one's
    ``where[0][i].where[1]`` key."""
    seen: set[str] = set()
    for i, ident in enumerate(ids):
        if ident in seen:
            label = ident if shown is None else shown[i]
            raise LocatedError((where[0], i, where[1]), f"duplicate {what} {label!r}")
        seen.add(ident)


def _check_action(
    scene_id: str, device_id: str, kind: DeviceKind, limits: DeviceLimits, action: SceneAction
) -> None:
    given = {k for k, v in action.model_dump().items() if v is not None}
    if not given:
        raise ValueError(f"scene {scene_id!r} sets nothing on {device_id!r}")
    wrong = given - FIELDS_FOR_KIND[kind]
    if wrong:
        raise ValueError(
            f"scene {scene_id!r}: {sorted(wrong)} do not apply to {device_id!r} (a {kind})"
        )
    # Imported here: edge.limits imports this module's types.
    from edge.limits import check_values

    problem = check_values(kind, limits, action.model_dump(exclude_none=True))
    if problem is not None:
        raise ValueError(f"scene {scene_id!r}, device {device_id!r}: {problem}")


def parse_config(text: str, source: str = "<config>") -> SiteConfig:
    """Parse and validate TOML text; ConfigError names line and key path of each problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source}: TOML syntax error: {exc}"]) from exc
    return validate_data(data, text, source)


def validate_data(data: dict[str, Any], text: str, source: str) -> SiteConfig:
    try:
        return SiteConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not _is_union_tag(p))
            cause = (err.get("ctx") or {}).get("error")
            if isinstance(cause, LocatedError):
                # A cross-field check: point at the value it names, not the table.
                loc = (*loc, *cause.loc)
            path = format_path(loc)
            line = locate(text, loc)
            where = f"{source}:{line}" if line else source
            problems.append(f"{where}: {path or '(top level)'}: {err['msg']}")
        raise ConfigError(problems) from exc


def load_config(path: Path | str) -> SiteConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read: {exc.strerror or exc}"]) from exc
    return parse_config(text, str(p))


def format_path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _union_tags() -> frozenset[str]:
    tags: set[str] = set()
    for model in (
        Zigbee2MqttDeviceConfig,
        HaJsonLightDeviceConfig,
        ModbusDeviceConfig,
        *typing.get_args(typing.get_args(ModbusBusConfig)[0]),
    ):
        tags.update(typing.get_args(model.model_fields["type"].annotation))
    return frozenset(tags)


_UNION_TAGS = _union_tags()


def _is_union_tag(part: str | int) -> bool:
    # pydantic inserts the discriminator value (e.g. 'zigbee2mqtt') or a
    # function name into the error location of tagged unions; they are not keys.
    return isinstance(part, str) and (part in _UNION_TAGS or part.startswith("function-"))
