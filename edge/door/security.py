"""Security modes per door and per schedule: which ways in open the door, and
whether the door display challenges the member.  No I/O.

- ``face_only``: a recognised, live face; the keypad PIN is refused.
- ``face_or_pin``: either one (the default).
- ``face_and_pin``: both, by the same member within ``second_factor_s`` in
  either order; the first one is recorded as ``pending`` and opens nothing.
- ``challenge`` (on top of any mode): once the member is recognised, the door
  display asks for a blink or a turn left or right, and only that, seen by
  the face mesh after the prompt, passes liveness.

``mode`` and ``challenge`` are the door's usual setting; ``[[door.security.schedule]]``
periods override them, the first period that applies now winning.  A period
applies during its own ``hours`` (a :class:`~edge.opening_hours.WeeklyHours`)
or while the site is ``open`` or ``closed`` by ``[opening_hours]`` (holidays
included), in the site's time zone, with no network.  The period in force is
named in every face or PIN door event (``security``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, model_validator

from drivers.config import ID_PATTERN, LocatedError, StrictModel
from edge.opening_hours import OpeningHours, WeeklyHours

SecurityMode = Literal["face_only", "face_or_pin", "face_and_pin"]
USUAL = "usual"  # the period name of the door's usual setting


class SecurityPeriod(StrictModel):
    """A time when another security mode (or the challenge) applies at this door."""

    name: str = Field(
        pattern=ID_PATTERN, description="Names the period in door events (e.g. 'night')."
    )
    hours: WeeklyHours | None = Field(
        None, description="When it applies, in the site's time zone (or use 'site')."
    )
    site: Literal["open", "closed"] | None = Field(
        None,
        description="Applies while the site is open, or closed, by [opening_hours] "
        "(holidays included); instead of 'hours'.",
    )
    mode: SecurityMode | None = Field(None, description="Mode in this period; unset: the usual.")
    challenge: bool | None = Field(
        None, description="Challenge in this period (true/false); unset: the usual."
    )

    @model_validator(mode="after")
    def _complete(self) -> SecurityPeriod:
        if (self.hours is None) == (self.site is None):
            raise ValueError(f"security period {self.name!r}: give exactly one of hours, site")
        if self.mode is None and self.challenge is None:
            raise ValueError(f"security period {self.name!r}: set mode, challenge or both")
        return self

    def applies(self, at: datetime, tz: ZoneInfo, site_hours: OpeningHours | None) -> bool:
        if self.hours is not None:
            return self.hours.is_open(at, tz)
        # Without [opening_hours] the site never closes (checked at load: not reached).
        site_open = site_hours is None or site_hours.is_open(at, tz)
        return site_open == (self.site == "open")


@dataclass(frozen=True, slots=True)
class Security:
    """The security in force now, and the period that set it."""

    mode: SecurityMode
    challenge: bool
    period: str

    def as_dict(self) -> dict[str, object]:
        return {"mode": self.mode, "challenge": self.challenge, "period": self.period}


class SecurityConfig(StrictModel):
    """Which ways in open the door, the challenge, and the periods that change them."""

    mode: SecurityMode = Field("face_or_pin", description="The door's usual security mode.")
    challenge: bool = Field(
        False,
        description="Usually challenge the member on the door display (blink, turn "
        "left or right), checked against the face mesh.",
    )
    schedule: list[SecurityPeriod] = Field(
        default_factory=list,
        description="Periods with another mode or challenge; the first that applies wins.",
    )
    second_factor_s: float = Field(
        30.0,
        gt=0,
        le=300,
        description="face_and_pin: seconds allowed between the face and the PIN (either order).",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> SecurityConfig:
        seen: set[str] = set()
        for i, period in enumerate(self.schedule):
            if period.name in seen or period.name == USUAL:
                raise LocatedError(
                    ("schedule", i, "name"),
                    f"security period name {period.name!r} is used twice (or is 'usual')",
                )
            seen.add(period.name)
        return self

    def at(self, at: datetime, tz: ZoneInfo, site_hours: OpeningHours | None) -> Security:
        """The security in force at ``at`` (an aware instant)."""
        for period in self.schedule:
            if period.applies(at, tz, site_hours):
                return Security(
                    period.mode or self.mode,
                    self.challenge if period.challenge is None else period.challenge,
                    period.name,
                )
        return Security(self.mode, self.challenge, USUAL)


def check_security_against_site(security: SecurityConfig, site_hours: OpeningHours | None) -> None:
    """A period tied to the site's hours needs ``[opening_hours]``."""
    if site_hours is not None:
        return
    for i, period in enumerate(security.schedule):
        if period.site is not None:
            raise LocatedError(
                ("door", "security", "schedule", i, "site"),
                f"door.security.schedule[{i}] ({period.name!r}) follows the site's hours, "
                "but there is no [opening_hours] section",
            )


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
