"""``[alerts]``: which critical events reach staff, and through which channels.

Secrets (the SMTP password, the webhook token) never appear in the config
text: a channel names a systemd credential (``LoadCredential=``, read from
``$CREDENTIALS_DIRECTORY``) or a file, read when a message is sent, so a
rotated secret needs no restart and no secret reaches a log line.
"""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from drivers.config import ID_PATTERN, StrictModel
from drivers.mqtt.config import CREDENTIAL_NAME_PATTERN

# The critical alert kinds forwarded by default; who publishes each is in
# docs/operations.md, Alerts.
CRITICAL_KINDS = (
    "heater_safety_off",
    "heater_offline",
    "heater_setpoint_corrected",
    "door_relock_failed",
    "door_forced",
    "tailgate",
    "door_camera_failed",
    "door_vision_unavailable",
    "disk_full",
    "sync_stuck",
    "component_restarting",
)
# Safety alerts go out even in a channel's quiet hours.
URGENT_KINDS = ("heater_safety_off", "heater_offline", "door_forced")
_QUIET = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


class ChannelBase(StrictModel):
    id: str = Field(pattern=ID_PATTERN, description="Channel id, shown on the dashboard.")
    quiet_hours: str | None = Field(
        None,
        description='Local "HH:MM-HH:MM" (may span midnight, e.g. "22:00-07:00") when this '
        "channel holds alerts until the quiet hours end; urgent_kinds still go out.",
    )
    urgent_kinds: list[str] | None = Field(
        None,
        description="Alert kinds sent even in quiet hours; unset: " + ", ".join(URGENT_KINDS) + ".",
    )
    max_per_hour: int = Field(
        20,
        ge=1,
        le=1000,
        description="Rate limit: messages per rolling hour; more wait their turn (none dropped).",
    )
    secret_credential: str | None = Field(
        None,
        pattern=CREDENTIAL_NAME_PATTERN,
        description="systemd credential (a file in $CREDENTIALS_DIRECTORY, see "
        "LoadCredential=) holding the channel's secret: SMTP password or webhook token.",
    )
    secret_file: Path | None = Field(
        None, description="Or a file (mode 0600) holding that secret; never the secret itself."
    )

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_span(cls, value: str | None) -> str | None:
        if value is not None:
            m = _QUIET.match(value)
            if m is None:
                raise ValueError(f"{value!r} is not HH:MM-HH:MM")
            if (m[1], m[2]) == (m[3], m[4]):
                raise ValueError("quiet hours start and end at the same time")
        return value

    @model_validator(mode="after")
    def _one_secret_source(self) -> ChannelBase:
        if self.secret_credential is not None and self.secret_file is not None:
            raise ValueError("give secret_credential or secret_file, not both")
        return self

    def urgent(self) -> frozenset[str]:
        return frozenset(URGENT_KINDS if self.urgent_kinds is None else self.urgent_kinds)

    def quiet_span(self) -> tuple[time, time] | None:
        if self.quiet_hours is None:
            return None
        m = _QUIET.match(self.quiet_hours)
        assert m is not None
        return time(int(m[1]), int(m[2])), time(int(m[3]), int(m[4]))


class EmailChannelConfig(ChannelBase):
    """E-mail over SMTP (STARTTLS on 587 by default)."""

    type: Literal["email"] = Field(description='"email".')
    host: str = Field(min_length=1, description="SMTP server host name.")
    port: int = Field(587, ge=1, le=65535, description="SMTP port.")
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls",
        description='"starttls" (587), "tls" (465) or "none" (a relay on the LAN or localhost).',
    )
    username: str | None = Field(
        None, description="SMTP login; its password comes from secret_credential/secret_file."
    )
    sender: str = Field(min_length=3, description="From: address.")
    recipients: list[str] = Field(min_length=1, description="To: addresses.")
    timeout_s: float = Field(15.0, gt=0, le=120, description="Per-message timeout, seconds.")

    @model_validator(mode="after")
    def _login_has_password(self) -> EmailChannelConfig:
        if self.username is not None and self.secret_credential is None and not self.secret_file:
            raise ValueError("username needs secret_credential or secret_file for its password")
        return self


class WebhookChannelConfig(ChannelBase):
    """An ntfy-compatible JSON webhook (POST {"topic", "title", "message", ...})."""

    type: Literal["webhook"] = Field(description='"webhook".')
    url: str = Field(
        description="Server URL the JSON is POSTed to, e.g. https://ntfy.example.org/ "
        "(no user, password or query: the token comes from the secret)."
    )
    topic: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="ntfy topic.")
    timeout_s: float = Field(10.0, gt=0, le=120, description="Per-message timeout, seconds.")

    @field_validator("url")
    @classmethod
    def _no_secret_in_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL")
        if parts.username or parts.password or parts.query:
            raise ValueError("no credentials or query in the URL; use secret_credential")
        return value


ChannelConfig = Annotated[EmailChannelConfig | WebhookChannelConfig, Field(discriminator="type")]


class AlertsConfig(StrictModel):
    """Critical events sent to staff channels, with de-duplication and repeats."""

    channels: list[ChannelConfig] = Field(
        min_length=1, description="Where alerts go: e-mail and/or webhook channels."
    )
    kinds: list[str] | None = Field(
        None,
        description="Alert kinds forwarded; unset: " + ", ".join(CRITICAL_KINDS) + ".",
    )
    dedup_window_s: float = Field(
        600.0,
        ge=0,
        le=86_400,
        description="The same alert (kind and device/door) again within this many seconds "
        "is counted, not sent again.",
    )
    repeat_s: float = Field(
        900.0,
        ge=60,
        le=86_400,
        description="An unacknowledged alert is sent again this often until acknowledged "
        "on the dashboard.",
    )

    def forwarded(self) -> frozenset[str]:
        return frozenset(CRITICAL_KINDS if self.kinds is None else self.kinds)

    sync_stuck_after_s: float = Field(
        1800.0,
        ge=60,
        le=7 * 86_400,
        description="With [cloud]: changes waiting and no sync progress for this long "
        "raise sync_stuck.",
    )

    @model_validator(mode="after")
    def _distinct(self) -> AlertsConfig:
        ids = [c.id for c in self.channels]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate channel id in {ids}")
        return self
