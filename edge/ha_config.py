"""``[home_assistant]``: MQTT discovery for a Home Assistant beside CoreSync.

Only the settings model (the site config imports it on every start); the
publisher is :mod:`edge.ha_discovery`.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from drivers.config import StrictModel
from drivers.mqtt.config import check_topic

DEVICE_REF = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}/[a-z0-9][a-z0-9_-]{0,62}$")


class HomeAssistantConfig(StrictModel):
    """Home Assistant MQTT discovery of every room (docs/mqtt.md)."""

    discovery: bool = Field(
        True,
        description=(
            "Publish retained Home Assistant discovery configs for every room's scenes, "
            "lights, climate, locks and sensors (needs [mqtt])."
        ),
    )
    discovery_prefix: str = Field(
        "homeassistant", description="Home Assistant's discovery prefix (its MQTT setting)."
    )
    lock_commands: list[str] = Field(
        default_factory=list,
        description=(
            'Locks ("room/device") Home Assistant may lock and unlock. Other locks appear '
            "read-only (a lock binary sensor); the [door] lock never takes commands from here."
        ),
    )

    @field_validator("discovery_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return check_topic(value, "discovery_prefix")

    @field_validator("lock_commands")
    @classmethod
    def _refs(cls, value: list[str]) -> list[str]:
        for ref in value:
            if not DEVICE_REF.match(ref):
                raise ValueError(f"lock_commands: {ref!r} is not 'room/device'")
        return value
