"""Opening hours: when the spa is open, per weekday, with holiday closures.

One home for the site's hours: the door's access rules ask ``is_open`` and
the scene schedules ask ``opens_at``/``closes_at`` ("pre-heat 45 minutes
before opening"), both with no network.  Times are wall-clock times in the
site's time zone (``[site] timezone``); conversion to an instant goes through
``zoneinfo``, so a day with a daylight-saving change keeps its local hours.

``WeeklyHours`` is the reusable part (per-tier door hours use it too);
``OpeningHours`` adds the holiday closures of the whole site.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from drivers.config import StrictModel

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_INTERVAL = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
Interval = tuple[time, time | None]  # end None = midnight at the end of the day


def parse_interval(text: str) -> Interval:
    """``"09:00-21:30"`` → (09:00, 21:30); ``"…-24:00"`` ends at midnight."""
    m = _INTERVAL.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not HH:MM-HH:MM (24-hour clock)")
    start = time(int(m[1]), int(m[2]))
    if m[3] == "24":
        if m[4] != "00":
            raise ValueError(f"{text!r}: 24:00 is the latest end")
        return start, None
    end = time(int(m[3]), int(m[4]))
    if end <= start:
        # Overnight opening would make one day's hours depend on the day
        # before; split it into "…-24:00" and the next day's "00:00-…".
        raise ValueError(f"{text!r} ends before it starts; split overnight hours at 24:00")
    return start, end


def _check_day(value: list[str]) -> list[str]:
    spans = sorted((parse_interval(v) for v in value), key=lambda span: span[0])
    for (_, end), (start, _) in itertools.pairwise(spans):
        if end is None or start < end:
            raise ValueError(f"intervals overlap: {value}")
    return value


_DAY = 'Open intervals, e.g. ["09:00-21:00"]; empty or absent: closed all day.'


class WeeklyHours(StrictModel):
    """Open intervals per weekday in the site's time zone; a day left out is closed."""

    monday: list[str] = Field(default_factory=list, description=f"Monday. {_DAY}")
    tuesday: list[str] = Field(default_factory=list, description=f"Tuesday. {_DAY}")
    wednesday: list[str] = Field(default_factory=list, description=f"Wednesday. {_DAY}")
    thursday: list[str] = Field(default_factory=list, description=f"Thursday. {_DAY}")
    friday: list[str] = Field(default_factory=list, description=f"Friday. {_DAY}")
    saturday: list[str] = Field(default_factory=list, description=f"Saturday. {_DAY}")
    sunday: list[str] = Field(default_factory=list, description=f"Sunday. {_DAY}")

    @field_validator(*WEEKDAYS)
    @classmethod
    def _valid_day(cls, value: list[str]) -> list[str]:
        return _check_day(value)

    def intervals_on(self, day: date) -> list[Interval]:
        """The day's open intervals, earliest first."""
        texts: list[str] = getattr(self, WEEKDAYS[day.weekday()])
        return sorted((parse_interval(t) for t in texts), key=lambda span: span[0])

    def is_open(self, at: datetime, tz: ZoneInfo) -> bool:
        """Whether ``at`` (an aware instant) falls in an open interval."""
        local = at.astimezone(tz)
        now = local.time().replace(tzinfo=None)
        return any(
            start <= now and (end is None or now < end)
            for start, end in self.intervals_on(local.date())
        )


class OpeningHours(WeeklyHours):
    """The site's opening hours, with whole-day holiday closures."""

    holidays: list[date] = Field(
        default_factory=list,
        description="Dates the spa is closed all day (YYYY-MM-DD), whatever the weekday says.",
    )

    def intervals_on(self, day: date) -> list[Interval]:
        if day in self.holidays:
            return []
        return super().intervals_on(day)

    def opens_at(self, day: date, tz: ZoneInfo) -> datetime | None:
        """The instant the spa first opens on ``day``; None when closed that day."""
        spans = self.intervals_on(day)
        return None if not spans else _instant(day, spans[0][0], tz)

    def closes_at(self, day: date, tz: ZoneInfo) -> datetime | None:
        """The instant the spa last closes on ``day``; None when closed that day."""
        spans = self.intervals_on(day)
        if not spans:
            return None
        end = spans[-1][1]
        return (
            _instant(day + timedelta(days=1), time(0), tz)
            if end is None
            else _instant(day, end, tz)
        )


def _instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """A local wall-clock time as an instant in UTC (aware datetimes in the
    fold of a DST change never compare equal across zones, so instants leave
    here in UTC).  A time that does not
    exist (the hour skipped when clocks go forward) lands as far past the
    gap as it was into it (02:30 → 03:30, as PEP 495 reads it); a repeated
    one (clocks go back) is its first occurrence."""
    # fold=0 reads a skipped time by the offset before the change, and a
    # repeated one as its first occurrence.
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)
