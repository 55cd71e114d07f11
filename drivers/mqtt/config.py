"""Configuration for the MQTT broker connection and the MQTT device drivers.

The broker password is never written in the site file: the config names an
environment variable (``password_env``) or a systemd credential
(``password_credential``), and :meth:`MqttBrokerConfig.resolve_password`
reads it at connect time, so a rotated secret needs no config change.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from drivers.config import DeviceConfigBase, StrictModel
from drivers.model import DeviceKind
from drivers.mqtt.errors import MqttCredentialError

ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# systemd credential names are file names: no path separators.
CREDENTIAL_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,254}$"


def check_topic(value: str, field: str, *, allow_wildcards: bool = False) -> str:
    """A topic (or topic prefix) usable as-is; ValueError names the field."""
    if not value:
        raise ValueError(f"{field}: must not be empty")
    if "\x00" in value:
        raise ValueError(f"{field}: must not contain NUL")
    if not allow_wildcards and ("+" in value or "#" in value):
        raise ValueError(f"{field}: MQTT wildcards '+' and '#' are not allowed here")
    if value.startswith("/") or value.endswith("/"):
        raise ValueError(f"{field}: must not start or end with '/'")
    return value


class MqttBrokerConfig(StrictModel):
    """The site's MQTT broker and how the daemon logs in to it."""

    host: str = Field("127.0.0.1", min_length=1, description="Broker host name or address.")
    port: int = Field(
        1883, ge=1, le=65535, strict=True, description="Broker TCP port (8883 is usual for TLS)."
    )
    tls: bool = Field(False, description="Connect with TLS.")
    ca_file: Path | None = Field(
        None, description="CA bundle to verify the broker with (TLS only); system CAs if unset."
    )
    username: str | None = Field(None, min_length=1, description="Broker user name.")
    password_env: str | None = Field(
        None,
        pattern=ENV_NAME_PATTERN,
        description="Name of the environment variable that holds the broker password.",
    )
    password_credential: str | None = Field(
        None,
        pattern=CREDENTIAL_NAME_PATTERN,
        description=(
            "Name of a systemd credential (a file in $CREDENTIALS_DIRECTORY, see "
            "LoadCredential=) that holds the broker password."
        ),
    )
    client_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description=(
            'MQTT client id; "coresync-<site id>" if unset, "coresync-<site id>-<node id>" '
            "when [cloud] names a node. Must be unique on the broker."
        ),
    )
    keepalive: int = Field(
        30,
        ge=5,
        le=3600,
        description="Keepalive in seconds; the broker publishes the last will after 1.5x this.",
    )
    zigbee2mqtt_base: str = Field(
        "zigbee2mqtt", description="Zigbee2MQTT base topic (its mqtt.base_topic setting)."
    )
    reconnect_min_s: float = Field(
        0.5, gt=0, le=60, description="Reconnect delay cap for the first retry, seconds."
    )
    reconnect_max_s: float = Field(
        30.0, gt=0, le=3600, description="Largest reconnect delay cap, seconds."
    )

    @field_validator("zigbee2mqtt_base")
    @classmethod
    def _base_topic(cls, value: str) -> str:
        return check_topic(value, "zigbee2mqtt_base")

    @model_validator(mode="after")
    def _cross_checks(self) -> MqttBrokerConfig:
        if self.password_env is not None and self.password_credential is not None:
            raise ValueError("give at most one of password_env and password_credential")
        if (self.password_env or self.password_credential) and self.username is None:
            raise ValueError("a password (password_env / password_credential) needs username")
        if self.ca_file is not None and not self.tls:
            raise ValueError("ca_file needs tls = true")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        return self

    def resolve_password(self) -> str | None:
        """The password, read now from the environment or the credential file.

        Raises :class:`MqttCredentialError` (naming the field, never the
        value) when the configured source is missing.
        """
        secret = self.resolve_secret()
        return None if secret is None else secret.get_secret_value()

    def resolve_secret(self) -> SecretStr | None:
        """Like :meth:`resolve_password`, wrapped so it cannot leak into a repr."""
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise MqttCredentialError(
                    f"password_env: environment variable {self.password_env} is not set"
                )
            return SecretStr(value)
        if self.password_credential is not None:
            directory = os.environ.get("CREDENTIALS_DIRECTORY")
            if not directory:
                raise MqttCredentialError(
                    "password_credential: $CREDENTIALS_DIRECTORY is not set "
                    "(run under systemd with LoadCredential=)"
                )
            path = Path(directory) / self.password_credential
            try:
                # A credential file is a few bytes: reading it inline is fine.
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise MqttCredentialError(
                    f"password_credential: cannot read {path}: {exc.strerror}"
                ) from None
            return SecretStr(text.rstrip("\r\n"))
        return None


class Zigbee2MqttDeviceConfig(DeviceConfigBase):
    """A device paired with Zigbee2MQTT, addressed by its friendly name."""

    type: Literal["zigbee2mqtt"] = Field(description="Selects the Zigbee2MQTT driver.")
    friendly_name: str = Field(
        min_length=1,
        max_length=200,
        description="Zigbee2MQTT friendly name; topics are <base>/<friendly_name>[/set].",
    )

    @field_validator("friendly_name")
    @classmethod
    def _name_is_topic(cls, value: str) -> str:
        check_topic(value, "friendly_name")
        if value.endswith(("/set", "/get", "/availability")):
            raise ValueError("friendly_name: must not end in /set, /get or /availability")
        return value

    @model_validator(mode="after")
    def _timer_fits(self) -> Zigbee2MqttDeviceConfig:
        if self.device_timer == "countdown_register":
            raise ValueError(
                f"heater {self.id!r}: device_timer 'countdown_register' is for Modbus devices; "
                "use 'on_time'"
            )
        return self


class HaJsonLightDeviceConfig(DeviceConfigBase):
    """A light speaking the Home Assistant MQTT JSON schema (ESPHome, Tasmota, ...)."""

    type: Literal["mqtt_json"] = Field(description="Selects the HA JSON light driver.")
    command_topic: str = Field(description="Topic the light takes JSON commands on.")
    state_topic: str = Field(description="Topic the light reports its JSON state on.")
    availability_topic: str | None = Field(
        None, description="Topic of the light's online/offline status, if it has one."
    )
    payload_available: str = Field(
        "online", min_length=1, description="Availability payload meaning online."
    )
    payload_not_available: str = Field(
        "offline", min_length=1, description="Availability payload meaning offline."
    )
    brightness_scale: int = Field(
        255, ge=1, le=65535, description="Brightness value the light means by full brightness."
    )
    color_mode: Literal["rgb", "xy"] = Field(
        "rgb",
        description=(
            "How the light takes a colour: 'rgb' ({r, g, b}: ESPHome, Tasmota) or 'xy' "
            "(CIE {x, y}). Reports in either form are read."
        ),
    )

    @field_validator("command_topic", "state_topic", "availability_topic")
    @classmethod
    def _topics(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else check_topic(value, info.field_name or "topic")

    @model_validator(mode="after")
    def _light_only(self) -> HaJsonLightDeviceConfig:
        if self.kind is not DeviceKind.LIGHT:
            raise ValueError(f"type = 'mqtt_json' needs kind = 'light', not {self.kind.value!r}")
        if self.command_topic == self.state_topic:
            raise ValueError("command_topic and state_topic must differ")
        if self.payload_available == self.payload_not_available:
            raise ValueError("payload_available and payload_not_available must differ")
        return self


MqttDeviceConfig = Zigbee2MqttDeviceConfig | HaJsonLightDeviceConfig
