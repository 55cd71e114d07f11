"""Render the site config reference (docs/config.md) from the models themselves.

``python -m edge.config_docs > docs/config.md``; a test keeps the file current
and fails on any config field without a description.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from drivers.config import DeviceLimits
from drivers.modbus.config import ModbusDeviceConfig, ModbusRtuBusConfig, ModbusTcpBusConfig
from drivers.mqtt.config import HaJsonLightDeviceConfig, MqttBrokerConfig, Zigbee2MqttDeviceConfig
from edge.alerts.config import AlertsConfig, EmailChannelConfig, WebhookChannelConfig
from edge.api.settings import ApiSettings
from edge.config import RoomConfig, SceneAction, SceneConfig, SiteInfo, StorageConfig
from edge.door.config import DoorConfig
from edge.door.rules import AccessRules
from edge.door.security import SecurityConfig, SecurityPeriod
from edge.ha_config import HomeAssistantConfig
from edge.opening_hours import OpeningHours, WeeklyHours
from edge.ops.retention import RetentionConfig
from edge.schedules_config import ScheduleSpec
from edge.supervisor import SupervisionConfig
from sync.config import CloudSyncConfig
from vision.config import AgreementConfig, LivenessConfig, MatchConfig, QualityConfig, WorkerConfig

SOURCE_ROOT = Path(__file__).resolve().parent.parent

SECTIONS: list[tuple[str, type[BaseModel], str]] = [
    ("[site]", SiteInfo, "Who and where this controller is."),
    ("[storage]", StorageConfig, "Where state is kept."),
    ("[mqtt]", MqttBrokerConfig, "The site's MQTT broker."),
    ('[[modbus_buses]] type = "tcp"', ModbusTcpBusConfig, "A Modbus TCP gateway."),
    ('[[modbus_buses]] type = "rtu"', ModbusRtuBusConfig, "An RS-485 serial bus (Modbus RTU)."),
    ("[[rooms]]", RoomConfig, "A room; `devices` and `scenes` are below."),
    (
        '[[rooms.devices]] type = "zigbee2mqtt"',
        Zigbee2MqttDeviceConfig,
        "A device paired to Zigbee2MQTT.",
    ),
    (
        '[[rooms.devices]] type = "mqtt_json"',
        HaJsonLightDeviceConfig,
        "A light speaking Home Assistant's MQTT JSON schema (ESPHome, Tasmota, ...).",
    ),
    ('[[rooms.devices]] type = "modbus"', ModbusDeviceConfig, "A Modbus device on a bus."),
    ("rooms.devices.limits", DeviceLimits, "Bounds enforced for every caller."),
    ("[[rooms.scenes]]", SceneConfig, "A scene of the room."),
    ("rooms.scenes.devices.<device id>", SceneAction, "What a scene sets on one device."),
    ("[api]", ApiSettings, "The LAN API for room tablets and staff (docs/api.md)."),
    ("[door]", DoorConfig, "The entrance door: face access, keypad PIN, consent retention."),
    ("[door.access]", AccessRules, "Who may come in now; each refusal names its rule."),
    (
        "[door.access.tier_hours.<tier>]",
        WeeklyHours,
        "Door hours of one membership tier (basic, premium, unlimited).",
    ),
    ("[door.security]", SecurityConfig, "Which ways in open the door, and the challenge."),
    (
        "[[door.security.schedule]]",
        SecurityPeriod,
        "A period with another mode or challenge (first match wins; docs/door.md).",
    ),
    ("[door.match]", MatchConfig, "When a face counts as a member (1:N)."),
    ("[door.agreement]", AgreementConfig, "Frames that must agree on one member."),
    ("[door.liveness]", LivenessConfig, "Liveness evidence required before an unlock."),
    ("[door.worker]", WorkerConfig, "The inference worker process."),
    ("[door.quality]", QualityConfig, "Enrollment photo quality gate."),
    ("[cloud]", CloudSyncConfig, "Sync with the cloud API (docs/sync.md); unset: stand-alone."),
    (
        "[home_assistant]",
        HomeAssistantConfig,
        "Home Assistant MQTT discovery of every room (docs/mqtt.md, Home Assistant).",
    ),
    (
        "[supervision]",
        SupervisionConfig,
        "Restart policy of the daemon's components (docs/operations.md, Supervision).",
    ),
    (
        "[retention]",
        RetentionConfig,
        "How long the growing tables are kept (docs/operations.md, Retention).",
    ),
    (
        "[opening_hours]",
        OpeningHours,
        "When the spa is open (site time zone); door access rules and schedules use it.",
    ),
    (
        "[[schedules]]",
        ScheduleSpec,
        "A scene schedule run by the controller (docs/operations.md, Schedules); "
        "managers add more on the dashboard.",
    ),
    (
        "[alerts]",
        AlertsConfig,
        "Critical events sent to staff (docs/operations.md, Alerts).",
    ),
    (
        '[[alerts.channels]] type = "email"',
        EmailChannelConfig,
        "E-mail over SMTP; the password from a systemd credential or a file.",
    ),
    (
        '[[alerts.channels]] type = "webhook"',
        WebhookChannelConfig,
        "An ntfy-compatible JSON webhook; the token from a systemd credential or a file.",
    ),
]


def _type_name(annotation: object) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return " / ".join(repr(a) for a in typing.get_args(annotation))
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "none"
    return getattr(annotation, "__name__", str(annotation))


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    if info.default_factory is not None:
        return "see below" if isinstance(info.default_factory, type) else "empty"
    if info.default is None or info.default is PydanticUndefined:
        return "unset"
    value = getattr(info.default, "value", info.default)
    if isinstance(value, Path) and value.is_relative_to(SOURCE_ROOT):
        # A path inside this checkout: say so, the absolute path is per machine.
        return f"`{value.relative_to(SOURCE_ROOT)}/` of the source tree"
    return f"`{value}`"


def undocumented() -> Iterator[str]:
    for title, model, _ in SECTIONS:
        for name, info in model.model_fields.items():
            if not info.description and name != "type":
                yield f"{title}: {name}"


def render() -> str:
    out = [
        "# Site config reference",
        "",
        "Generated from the config models by `python -m edge.config_docs`; do not edit by hand.",
        "Unknown keys are errors. `coresync-edge validate-config FILE` checks a file and names",
        "the line and key path of every problem. A full example: `config/site.example.toml`.",
        "",
    ]
    for title, model, intro in SECTIONS:
        out += [
            f"## `{title}`",
            "",
            intro,
            "",
            "| key | type | default | meaning |",
            "|---|---|---|---|",
        ]
        for name, info in model.model_fields.items():
            desc = (info.description or "selects the driver").replace("|", "\\|")
            out.append(f"| `{name}` | {_type_name(info.annotation)} | {_default(info)} | {desc} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(render())
