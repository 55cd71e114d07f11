"""Scene schedules: what runs when (``[[schedules]]`` in the site config, or
added on the dashboard by a manager).

A schedule runs one scene of one room, on chosen weekdays, at one of:

- a wall-clock time (``at = "07:30"``), in the site's time zone;
- ``before_opening_min`` minutes before the spa opens that day
  (``[opening_hours]``), e.g. pre-heat the sauna 45 minutes before opening;
- ``after_closing_min`` minutes after it closes (0 = at closing), e.g.
  "close for the night".

Holiday closures are honoured: a day the spa is closed has no opening, so the
relative schedules skip it, and a fixed-time schedule skips it too unless
``on_holidays`` says otherwise.  The model is the one validation for both
the config file and the dashboard's API; :func:`check_schedule` adds the
checks against the site (the room, the scene, opening hours present).
"""

from __future__ import annotations

import re
from datetime import time
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from drivers.config import ID_PATTERN, LocatedError, StrictModel

if TYPE_CHECKING:
    from edge.config import RoomConfig
    from edge.opening_hours import OpeningHours

Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_AT = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
# A day has 1440 minutes; further than that from opening is another day's business.
MAX_OFFSET_MIN = 720


class ScheduleSpec(StrictModel):
    """One scene schedule."""

    id: str = Field(pattern=ID_PATTERN, description="Schedule id, unique in the site.")
    room: str = Field(pattern=ID_PATTERN, description="Room whose scene runs.")
    scene: str = Field(pattern=ID_PATTERN, description="Scene of that room to run.")
    days: list[Weekday] | None = Field(
        None,
        min_length=1,
        description="Weekdays it runs on (lower-case English names); unset: every day.",
    )
    at: str | None = Field(
        None,
        description='Wall-clock time "HH:MM" in the site\'s time zone. One of at, '
        "before_opening_min, after_closing_min.",
    )
    before_opening_min: int | None = Field(
        None,
        ge=0,
        le=MAX_OFFSET_MIN,
        description="Minutes before the spa opens that day ([opening_hours] needed).",
    )
    after_closing_min: int | None = Field(
        None,
        ge=0,
        le=MAX_OFFSET_MIN,
        description="Minutes after the spa closes that day, 0 = at closing "
        "([opening_hours] needed).",
    )
    on_holidays: bool = Field(
        False,
        description="A fixed-time schedule also runs on holiday closures "
        "(relative ones never do: the spa does not open).",
    )
    enabled: bool = Field(True, description="False keeps the schedule but does not run it.")

    @field_validator("at")
    @classmethod
    def _clock_time(cls, value: str | None) -> str | None:
        if value is not None and _AT.match(value) is None:
            raise ValueError(f"{value!r} is not HH:MM (24-hour clock)")
        return value

    @field_validator("days")
    @classmethod
    def _distinct_days(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("a weekday is listed twice")
        return value

    @model_validator(mode="after")
    def _one_trigger(self) -> ScheduleSpec:
        given = [
            name
            for name in ("at", "before_opening_min", "after_closing_min")
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise LocatedError(
                (given[-1] if given else "at",),
                "give exactly one of at, before_opening_min, after_closing_min"
                + (f" (got {', '.join(given)})" if given else ""),
            )
        return self

    @property
    def at_time(self) -> time | None:
        if self.at is None:
            return None
        hours, minutes = self.at.split(":")
        return time(int(hours), int(minutes))

    def describe(self) -> str:
        """When it runs, in words (for the dashboard and logs)."""
        if self.at is not None:
            when = f"at {self.at}"
        elif self.before_opening_min is not None:
            when = f"{self.before_opening_min} min before opening"
        elif self.after_closing_min:
            when = f"{self.after_closing_min} min after closing"
        else:
            when = "at closing"
        days = "every day" if self.days is None else ", ".join(d[:3] for d in self.days)
        return f"{self.room}/{self.scene} {when}, {days}"


def check_schedule(
    spec: ScheduleSpec, rooms: list[RoomConfig], hours: OpeningHours | None
) -> LocatedError | None:
    """The schedule's problem against the site, located by its key; None if it fits.

    The scene itself was checked against the devices' limits when the config
    loaded, so a schedule that names a known scene is within limits."""
    room = next((r for r in rooms if r.id == spec.room), None)
    if room is None:
        known = ", ".join(r.id for r in rooms)
        return LocatedError(("room",), f"unknown room {spec.room!r} (rooms: {known})")
    if not any(s.id == spec.scene for s in room.scenes):
        known = ", ".join(s.id for s in room.scenes) or "none"
        return LocatedError(
            ("scene",), f"room {spec.room!r} has no scene {spec.scene!r} (scenes: {known})"
        )
    relative = "before_opening_min" if spec.before_opening_min is not None else None
    if spec.after_closing_min is not None:
        relative = "after_closing_min"
    if relative is not None and hours is None:
        return LocatedError(
            (relative,), f"{relative} needs the site's [opening_hours], which are not set"
        )
    return None


def check_schedules(
    schedules: list[ScheduleSpec], rooms: list[RoomConfig], hours: OpeningHours | None
) -> None:
    """The config's cross-check: raises LocatedError at ``schedules[i].<key>``."""
    seen: set[str] = set()
    for i, spec in enumerate(schedules):
        if spec.id in seen:
            raise LocatedError(("schedules", i, "id"), f"duplicate schedule id {spec.id!r}")
        seen.add(spec.id)
        problem = check_schedule(spec, rooms, hours)
        if problem is not None:
            raise LocatedError(("schedules", i, *problem.loc), str(problem))
