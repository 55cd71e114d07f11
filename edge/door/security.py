"""Security modes per door and per schedule: which ways in open the door.  No I/O.

- ``face_only``: a recognised, live face; the keypad PIN is refused.
- ``face_or_pin``: either one (the default, as before).
- ``face_and_pin``: both, by the same member within ``second_factor_s`` in
  either order; the first one is recorded as ``pending`` and opens nothing.

``scheduled_mode`` applies during ``scheduled_hours`` (a
:class:`~edge.opening_hours.WeeklyHours` in the site's time zone), e.g. two
factors at night.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, model_validator

from drivers.config import StrictModel
from edge.opening_hours import WeeklyHours

SecurityMode = Literal["face_only", "face_or_pin", "face_and_pin"]


class SecurityConfig(StrictModel):
    """Which ways in open the door, and when a stricter mode applies."""

    mode: SecurityMode = Field("face_or_pin", description="The door's usual security mode.")
    scheduled_mode: SecurityMode | None = Field(
        None, description="Mode during scheduled_hours (e.g. face_and_pin at night)."
    )
    scheduled_hours: WeeklyHours | None = Field(
        None, description="When scheduled_mode applies, in the site's time zone."
    )
    second_factor_s: float = Field(
        30.0,
        gt=0,
        le=300,
        description="face_and_pin: seconds allowed between the face and the PIN (either order).",
    )

    @model_validator(mode="after")
    def _schedule_complete(self) -> SecurityConfig:
        if (self.scheduled_mode is None) != (self.scheduled_hours is None):
            raise ValueError("scheduled_mode and scheduled_hours go together")
        return self

    def mode_at(self, at: datetime, tz: ZoneInfo) -> SecurityMode:
        if self.scheduled_mode and self.scheduled_hours and self.scheduled_hours.is_open(at, tz):
            return self.scheduled_mode
        return self.mode


class SecondFactors:
    """face_and_pin: the first factor of each member, waiting for the other one."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, str], float] = {}

    def complete(self, member_id: str, factor: str, now: float, within_s: float) -> bool:
        """Record ``factor`` ("face" or "pin"); True when the other one came within_s ago."""
        other = "pin" if factor == "face" else "face"
        at = self._pending.pop((member_id, other), None)
        if at is not None and now - at <= within_s:
            self._pending.pop((member_id, factor), None)
            return True
        self._pending = {k: t for k, t in self._pending.items() if now - t <= within_s}
        self._pending[(member_id, factor)] = now
        return False
