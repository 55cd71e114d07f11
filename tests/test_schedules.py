"""Scene schedules: when they run (site time zone, daylight-saving changes,
opening hours, holidays), the config checks that name the line, and the
runner firing real scenes on simulated Zigbee devices over Mosquitto with a
clock the test moves (no waiting for wall time)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from drivers.model import Availability, LightState
from drivers.mqtt.simulator import ZigbeeSimulator
from edge.config import parse_config
from edge.core import EdgeCore
from edge.demo.runner import zigbee_devices
from edge.errors import ConfigError
from edge.opening_hours import OpeningHours
from edge.schedules import ScheduleRunner, next_run
from edge.schedules_config import ScheduleSpec
from edge.service import EdgeService
from tests.conftest import Broker
from tests.edge_site import wait_until
from tests.manual_clock import TestClock

NY = ZoneInfo("America/New_York")
# 2026: clocks go forward on Sunday 8 March (02:00 EST → 03:00 EDT) and back
# on Sunday 1 November (02:00 EDT → 01:00 EST).
HOURS = OpeningHours(
    **{day: ["09:00-21:00"] for day in ("monday", "tuesday", "wednesday", "thursday", "friday")},
    saturday=["09:00-18:00"],
    sunday=["09:00-18:00"],
    holidays=[date(2026, 3, 14)],
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def spec(**fields: object) -> ScheduleSpec:
    return ScheduleSpec.model_validate({"id": "s", "room": "spa", "scene": "warm", **fields})


# -- when a schedule runs -----------------------------------------------------------
def test_fixed_time_keeps_local_time_across_spring_forward() -> None:
    s = spec(at="07:00")
    first = next_run(s, utc("2026-03-07T10:00"), NY, HOURS)
    assert first == utc("2026-03-07T12:00")  # 07:00 EST
    assert next_run(s, first, NY, HOURS) == utc("2026-03-08T11:00")  # 07:00 EDT


def test_a_time_skipped_by_spring_forward_runs_once_just_after_the_gap() -> None:
    s = spec(at="02:30", days=["sunday"])
    assert next_run(s, utc("2026-03-07T00:00"), NY, HOURS) == utc("2026-03-08T07:30")  # 03:30 EDT


def test_a_time_repeated_by_fall_back_runs_once() -> None:
    s = spec(at="01:30")
    first = next_run(s, utc("2026-11-01T04:00"), NY, HOURS)
    assert first == utc("2026-11-01T05:30")  # the first 01:30 (EDT)
    # The second 01:30 (EST, 06:30Z) is not a second run: the next is Monday's.
    assert next_run(s, first, NY, HOURS) == utc("2026-11-02T06:30")


def test_before_opening_and_at_closing_follow_opening_hours_and_dst() -> None:
    pre = spec(before_opening_min=45)
    assert next_run(pre, utc("2026-03-07T00:00"), NY, HOURS) == utc("2026-03-07T13:15")
    assert next_run(pre, utc("2026-03-07T14:00"), NY, HOURS) == utc("2026-03-08T12:15")
    close = spec(after_closing_min=0, days=["friday"])
    assert next_run(close, utc("2026-03-01T00:00"), NY, HOURS) == utc("2026-03-07T02:00")


def test_holiday_closures_are_honoured() -> None:
    after = utc("2026-03-13T23:00")  # Friday evening before the holiday Saturday
    saturdays = {"days": ["saturday"]}
    assert next_run(spec(before_opening_min=30, **saturdays), after, NY, HOURS) == utc(
        "2026-03-21T12:30"
    )
    assert next_run(spec(at="08:00", **saturdays), after, NY, HOURS) == utc("2026-03-21T12:00")
    on_holidays = spec(at="08:00", on_holidays=True, **saturdays)
    assert next_run(on_holidays, after, NY, HOURS) == utc("2026-03-14T12:00")


def test_a_schedule_needs_exactly_one_trigger() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        spec()
    with pytest.raises(ValidationError, match="exactly one"):
        spec(at="07:00", before_opening_min=10)
    with pytest.raises(ValidationError, match="HH:MM"):
        spec(at="7:00")


# -- the config file ------------------------------------------------------------------
SITE = """\
[site]
id = "{site}"
name = "Schedule spa"
timezone = "America/New_York"

[mqtt]
host = "{host}"
port = {port}
zigbee2mqtt_base = "{base}"
reconnect_min_s = 0.1
reconnect_max_s = 1.0

[opening_hours]
saturday = ["09:00-18:00"]
sunday = ["09:00-18:00"]
holidays = [2026-03-14]

[[rooms]]
id = "spa"
name = "Spa"
  [[rooms.devices]]
  id = "lamp"
  kind = "light"
  type = "zigbee2mqtt"
  friendly_name = "{tag}_lamp"
  limits = {{ max_brightness = 90 }}
  [[rooms.scenes]]
  id = "warm"
  name = "Warm"
  devices.lamp = {{ on = true, brightness = 60 }}
  [[rooms.scenes]]
  id = "night"
  name = "Night"
  devices.lamp = {{ on = false }}

[[schedules]]
id = "morning"
room = "spa"
scene = "warm"
at = "07:00"

[[schedules]]
id = "preheat"
room = "spa"
scene = "warm"
before_opening_min = 45
"""


def site_text(tag: str = "t", host: str = "127.0.0.1", port: int = 1883) -> str:
    return SITE.format(site=f"sched-{tag}", host=host, port=port, base=f"sched-{tag}", tag=tag)


def test_config_refuses_a_schedule_naming_an_unknown_scene_with_its_line() -> None:
    text = site_text().replace('scene = "warm"\nbefore', 'scene = "sauna"\nbefore')
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "site.toml")
    (problem,) = caught.value.problems
    line = text.splitlines().index('scene = "sauna"') + 1
    assert problem.startswith(f"site.toml:{line}: schedules[1].scene:"), problem
    assert "has no scene 'sauna'" in problem


def test_config_refuses_an_unknown_room_and_relative_times_without_hours() -> None:
    text = site_text().replace(
        'room = "spa"\nscene = "warm"\nat', 'room = "pool"\nscene = "warm"\nat'
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "site.toml")
    line = text.splitlines().index('room = "pool"') + 1
    assert caught.value.problems[0].startswith(f"site.toml:{line}: schedules[0].room:")
    no_hours = site_text().replace('[opening_hours]\nsaturday = ["09:00-18:00"]\n', "")
    no_hours = no_hours.replace('sunday = ["09:00-18:00"]\nholidays = [2026-03-14]\n', "")
    with pytest.raises(ConfigError, match=r"before_opening_min needs the site's \[opening_hours\]"):
        parse_config(no_hours, "site.toml")


# -- the runner, on real parts, with the test's clock --------------------------------------
@dataclass
class ScheduledSite:
    service: EdgeService
    core: EdgeCore
    runner: ScheduleRunner
    clock: TestClock
    zigbee: ZigbeeSimulator

    async def move_to(self, when: datetime) -> None:
        self.clock.set(when)
        await wait_until(lambda: self.runner.checked_through == when)

    async def schedule_commands(self) -> list[tuple[str, str | None]]:
        rows = await self.core.store.commands()
        return [(r["actor_id"], r["scene_id"]) for r in rows if r["actor_kind"] == "schedule"]


@pytest.fixture
async def site(mqtt_broker: Broker, tmp_path: Path) -> AsyncIterator[ScheduledSite]:
    tag = uuid.uuid4().hex[:8]
    cfg = parse_config(site_text(tag, mqtt_broker.host, mqtt_broker.port))
    zigbee = ZigbeeSimulator(
        mqtt_broker.host, mqtt_broker.port, base=f"sched-{tag}", devices=zigbee_devices(cfg)
    )
    await zigbee.start()
    clock = TestClock(utc("2026-03-07T10:00"))  # Saturday 05:00 EST
    service = EdgeService(cfg, data_dir=tmp_path, with_api=False, clock=clock)
    try:
        core = await service.start()
        await wait_until(
            lambda: all(
                d.snapshot().availability is Availability.ONLINE for _, d in core.all_devices()
            )
        )
        assert service.schedules is not None
        yield ScheduledSite(service, core, service.schedules, clock, zigbee)
    finally:
        await service.stop()
        await zigbee.stop()


async def test_schedules_fire_at_their_time_across_the_dst_change(site: ScheduledSite) -> None:
    runner = site.runner
    await wait_until(lambda: runner.next_due == utc("2026-03-07T12:00"))  # 07:00 EST
    assert await site.schedule_commands() == []

    await site.move_to(utc("2026-03-07T12:00"))
    assert await site.schedule_commands() == [("morning", "warm")]
    lamp = site.core.room("spa").devices["lamp"].snapshot().state
    assert isinstance(lamp, LightState) and lamp.on and lamp.brightness == 60
    assert runner.next_due == utc("2026-03-07T13:15")  # 45 min before 09:00 EST

    await site.move_to(utc("2026-03-07T13:15"))
    assert [a for a, _ in await site.schedule_commands()] == ["preheat", "morning"]
    # Overnight the clocks go forward: Sunday's 07:00 is an hour earlier in UTC.
    assert runner.next_due == utc("2026-03-08T11:00")
    site.clock.set(utc("2026-03-08T10:59"))
    await wait_until(lambda: site.clock.seen == utc("2026-03-08T10:59"))  # looked, slept on
    assert runner.checked_through == utc("2026-03-07T13:15")
    assert len(await site.schedule_commands()) == 2
    await site.move_to(utc("2026-03-08T11:00"))
    assert [a for a, _ in await site.schedule_commands()] == ["morning", "preheat", "morning"]
    assert runner.next_due == utc("2026-03-08T12:15")  # 45 min before 09:00 EDT

    # Down (or the clock stepped) past a run by more than the late limit: not run late.
    await site.move_to(utc("2026-03-08T13:00"))
    assert len(await site.schedule_commands()) == 3
    assert (runner.recent[-1]["schedule_id"], runner.recent[-1]["result"]) == ("preheat", "missed")
    # The holiday Saturday (14 March) has no opening: the next pre-heat is Sunday's.
    await site.move_to(utc("2026-03-13T12:00"))
    nxt = next(s for s in runner.view() if s["id"] == "preheat")["next_run"]
    assert nxt == "2026-03-15T12:15:00+00:00"


async def test_a_scene_failing_unexpectedly_is_recorded_not_a_crash_loop(
    site: ScheduledSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected bug")

    monkeypatch.setattr(site.core, "activate_scene", broken)
    await wait_until(lambda: site.runner.next_due == utc("2026-03-07T12:00"))
    await site.move_to(utc("2026-03-07T12:00"))
    last = site.runner.recent[-1]
    assert (last["schedule_id"], last["result"]) == ("morning", "error")
    assert "injected bug" in last["detail"]
    component = site.service.supervisor.components["schedules"]
    assert component.up and component.restarts == 0
    assert site.runner.next_due == utc("2026-03-07T13:15")  # on to the next run
