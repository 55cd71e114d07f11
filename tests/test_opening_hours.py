"""Opening hours: weekday intervals, holidays, time zones and DST days."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from edge.config import parse_config
from edge.errors import ConfigError
from edge.opening_hours import OpeningHours, parse_interval

NY = ZoneInfo("America/New_York")
HOURS = OpeningHours(
    monday=["09:00-12:00", "13:00-21:00"],
    saturday=["08:00-24:00"],
    sunday=["01:00-05:00"],
    holidays=[date(2026, 12, 28)],
)


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY)  # type: ignore[misc]


def test_intervals_and_lunch_break() -> None:
    assert HOURS.is_open(ny(2026, 12, 7, 9, 0), NY)  # a Monday, opening minute
    assert not HOURS.is_open(ny(2026, 12, 7, 8, 59), NY)
    assert not HOURS.is_open(ny(2026, 12, 7, 12, 30), NY)  # lunch break
    assert not HOURS.is_open(ny(2026, 12, 7, 21, 0), NY)  # closing minute is closed
    assert not HOURS.is_open(ny(2026, 12, 8, 10, 0), NY)  # Tuesday: not listed, closed
    assert HOURS.is_open(ny(2026, 12, 12, 23, 59), NY)  # Saturday until midnight


def test_holiday_closes_a_weekday() -> None:
    assert not HOURS.is_open(ny(2026, 12, 28, 10, 0), NY)  # a Monday, but a holiday
    assert HOURS.opens_at(date(2026, 12, 28), NY) is None


def test_instants_are_read_in_the_site_zone() -> None:
    # 14:30 UTC on a Monday in December is 09:30 in New York: open.
    assert HOURS.is_open(datetime(2026, 12, 7, 14, 30, tzinfo=UTC), NY)
    assert not HOURS.is_open(datetime(2026, 12, 7, 9, 30, tzinfo=UTC), NY)


def test_opening_and_closing_instants_across_dst() -> None:
    # 2027-03-14: clocks go forward at 02:00 in New York (EST -5 → EDT -4).
    spring = date(2027, 3, 14)
    assert HOURS.opens_at(spring, NY) == datetime(2027, 3, 14, 6, 0, tzinfo=UTC)
    assert HOURS.closes_at(spring, NY) == datetime(2027, 3, 14, 9, 0, tzinfo=UTC)
    # 2026-11-01: clocks go back at 02:00 (EDT → EST); 01:00 exists twice,
    # the first occurrence (EDT) counts.
    autumn = date(2026, 11, 1)
    assert HOURS.opens_at(autumn, NY) == datetime(2026, 11, 1, 5, 0, tzinfo=UTC)
    assert HOURS.closes_at(autumn, NY) == datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    # Saturday "…-24:00" closes at the next midnight.
    assert HOURS.closes_at(date(2026, 12, 12), NY) == datetime(2026, 12, 13, 5, 0, tzinfo=UTC)


def test_skipped_local_time_lands_after_the_gap() -> None:
    hours = OpeningHours(sunday=["02:30-06:00"])
    opens = hours.opens_at(date(2027, 3, 14), NY)
    assert opens is not None
    assert opens.astimezone(NY).time() == time(3, 30)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("9-17", "HH:MM-HH:MM"),
        ("21:00-09:00", "split overnight"),
        ("09:00-24:30", "24:00 is the latest"),
        ("25:00-26:00", "HH:MM-HH:MM"),
    ],
)
def test_bad_intervals_are_refused(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_interval(text)


def test_overlaps_and_unknown_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match="overlap"):
        OpeningHours(monday=["09:00-12:00", "11:00-13:00"])
    with pytest.raises(ValidationError, match="Extra inputs"):
        OpeningHours.model_validate({"mondays": ["09:00-12:00"]})


def test_site_config_names_the_line_of_a_bad_interval() -> None:
    text = """\
[site]
id = "spa"
name = "Spa"
timezone = "America/New_York"

[opening_hours]
monday = ["09:00-21:00"]
friday = ["21:00-09:00"]

[[rooms]]
id = "a"
name = "A"
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "site.toml")
    (problem,) = caught.value.problems
    assert problem.startswith("site.toml:8: opening_hours.friday:"), problem
    assert "split overnight" in problem


def test_same_start_twice_is_an_overlap() -> None:
    with pytest.raises(ValidationError, match="overlap"):
        OpeningHours(monday=["09:00-24:00", "09:00-10:00"])
