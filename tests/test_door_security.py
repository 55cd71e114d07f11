"""Security modes per door and per schedule: face only, face or PIN, face and PIN,
and the challenge.  Real site (Mosquitto, simulated lock), the real PIN path; a
face attempt is the decider's outcome handed to the service (recognition is
tested elsewhere).  The schedule is evaluated on the test's clock in the site's
time zone; the challenge end to end: tests/test_door_display.py."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from edge.config import parse_config
from edge.door.decision import Attempt, DoorDecider
from edge.door.security import Security, SecurityConfig
from edge.door.service import DoorService
from edge.errors import ConfigError
from edge.opening_hours import OpeningHours
from tests.test_api_support import ApiSite
from tests.test_door_config import SITE
from tests.test_door_service import door_config, new_member, site  # noqa: F401
from vision.detect import Detection
from vision.liveness import LivenessConfig
from vision.matcher import AgreementConfig, MatchResult
from vision.mesh import MeshFeatures
from vision.pipeline import FaceAnalysis, FrameResult

MONDAY_NOON = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
MONDAY_NIGHT = datetime(2026, 12, 7, 23, 0, tzinfo=UTC)


async def door_for(api: ApiSite, tmp: Path, security: dict[str, object]) -> tuple[DoorService, str]:
    door = DoorService(api.core, door_config(security=security), tmp / "door")
    await door.start()
    member = await new_member(api, "Kit Harington")
    await door.grant_consent(member, "staff1", "door access by face")
    await door.set_pin(member, "4821", "staff1")
    door.clock = lambda: MONDAY_NOON
    return door, member


def face(member: str) -> Attempt:
    return Attempt(True, "recognised", member, 0.3, 0.4, None, {})


async def test_face_only_refuses_the_pin(site: ApiSite, tmp_path: Path) -> None:  # noqa: F811
    door, member = await door_for(site, tmp_path, {"mode": "face_only"})
    try:
        refused = await door.pin_unlock(member, "4821", "keypad-1")
        assert (refused.decision, refused.reason) == ("deny", "pin_not_allowed")
        opened = await door.handle_attempt(face(member), {})
        assert (opened.method, opened.decision) == ("face", "unlock")
    finally:
        await door.stop()


async def test_face_and_pin_at_night_needs_both_in_either_order(
    site: ApiSite,  # noqa: F811
    tmp_path: Path,
) -> None:
    night = {"monday": ["22:00-24:00"]}
    door, member = await door_for(
        site,
        tmp_path,
        {
            "schedule": [{"name": "night", "hours": night, "mode": "face_and_pin"}],
            "second_factor_s": 30,
        },
    )
    try:
        # By day the usual face_or_pin: the PIN alone opens.
        by_day = await door.pin_unlock(member, "4821", "keypad-1")
        assert by_day.decision == "unlock"
        assert by_day.security == {"mode": "face_or_pin", "challenge": False, "period": "usual"}
        door.clock = lambda: MONDAY_NIGHT
        first = await door.handle_attempt(face(member), {})
        assert (first.decision, first.reason) == ("pending", "awaiting_pin")
        # The door event names the period in force (and the dashboard lists it).
        assert first.security == {"mode": "face_and_pin", "challenge": False, "period": "night"}
        assert door.status()["security"] == first.security  # the door page shows it
        both = await door.pin_unlock(member, "4821", "keypad-1")
        assert (both.method, both.decision) == ("face+pin", "unlock")
        # PIN first, then the face; a wrong PIN is no factor at all.
        assert (await door.pin_unlock(member, "0000", "keypad-1")).reason == "wrong_pin"
        assert (await door.handle_attempt(face(member), {})).reason == "awaiting_pin"
        pin_first = await door.pin_unlock(member, "4821", "keypad-1")
        assert pin_first.decision == "unlock"  # the face above was still waiting
        assert (await door.pin_unlock(member, "4821", "keypad-1")).reason == "awaiting_face"
        done = await door.handle_attempt(face(member), {})
        assert (done.method, done.decision) == ("face+pin", "unlock")
    finally:
        await door.stop()


NY = ZoneInfo("America/New_York")
SITE_HOURS = OpeningHours.model_validate(
    {"monday": ["07:00-21:00"], "holidays": [date(2026, 12, 25)]}
)


def test_first_period_that_applies_wins_in_the_site_time_zone() -> None:
    """ "face_and_pin and a challenge outside opening hours, face_only inside",
    and an early-morning challenge that only changes the challenge."""
    security = SecurityConfig.model_validate(
        {
            "mode": "face_or_pin",
            "schedule": [
                {"name": "early", "hours": {"monday": ["07:00-08:00"]}, "challenge": True},
                {"name": "open", "site": "open", "mode": "face_only"},
                {"name": "closed", "site": "closed", "mode": "face_and_pin", "challenge": True},
            ],
        }
    )

    def at(day: int, hour: int) -> Security:
        return security.at(datetime(2026, 12, day, hour, 0, tzinfo=NY), NY, SITE_HOURS)

    assert at(7, 10) == Security("face_only", False, "open")  # Monday 10:00 New York
    assert at(7, 22) == Security("face_and_pin", True, "closed")
    assert at(7, 7) == Security("face_or_pin", True, "early")  # listed first: it wins
    assert at(25, 10) == Security("face_and_pin", True, "closed")  # a holiday: closed
    # 15:00 UTC is 10:00 in New York: the instant is read in the site's zone.
    utc = security.at(datetime(2026, 12, 7, 15, 0, tzinfo=UTC), NY, SITE_HOURS)
    assert utc.period == "open"
    assert SecurityConfig().at(datetime(2026, 12, 7, 15, 0, tzinfo=UTC), NY, None) == Security(
        "face_or_pin", False, "usual"
    )


DOOR = 'room = "entrance"\nlock = "door"\n'


@pytest.mark.parametrize(
    ("security", "needle"),
    [
        ('[[door.security.schedule]]\nname = "x"\nmode = "face_only"', "exactly one of hours"),
        (
            '[[door.security.schedule]]\nname = "x"\nsite = "closed"\n'
            'hours = { monday = ["00:00-24:00"] }\nmode = "face_only"',
            "exactly one of hours",
        ),
        ('[[door.security.schedule]]\nname = "x"\nsite = "open"', "set mode, challenge"),
        ('[[door.security.schedule]]\nname = "x"\nsite = "open"\nmode = "pin_only"', "mode"),
        ('[[door.security.schedule]]\nname = "x"\nsite = "open"\nchallenge = true\nwho = 1', "who"),
        (
            '[[door.security.schedule]]\nname = "n"\nsite = "open"\nmode = "face_only"\n'
            '[[door.security.schedule]]\nname = "n"\nsite = "closed"\nmode = "face_only"',
            "used twice",
        ),
        # Without [opening_hours] the site's hours cannot decide the period.
        (
            '[[door.security.schedule]]\nname = "x"\nsite = "closed"\nchallenge = true',
            "no [opening_hours]",
        ),
        ('[door.security]\nscheduled_mode = "face_and_pin"', "scheduled_mode"),
    ],
)
def test_bad_security_schedule_names_the_problem(security: str, needle: str) -> None:
    text = SITE.format(door=DOOR + security)
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert needle in " ".join(err.value.problems), err.value.problems


def test_a_schedule_on_the_site_hours_loads_with_opening_hours() -> None:
    text = SITE.format(
        door=DOOR + '[[door.security.schedule]]\nname = "closed"\n'
        'site = "closed"\nmode = "face_and_pin"\nchallenge = true'
    )
    text += '\n[opening_hours]\nmonday = ["07:00-21:00"]\n'
    cfg = parse_config(text)
    assert cfg.door is not None
    period = cfg.door.security.schedule[0]
    assert (period.name, period.site, period.mode, period.challenge) == (
        "closed",
        "closed",
        "face_and_pin",
        True,
    )


def _frame(t: float, match: str | None, yaw: float = 0.0, lid: float = 0.07) -> FrameResult:
    box = (100.0, 100.0, 280.0, 300.0)
    detection = Detection(box, 0.9, np.zeros((6, 2), np.float32), "test")
    mesh = MeshFeatures(ear=0.3, yaw=yaw, pitch=0.0, presence=1.0, openness=lid)
    result = MatchResult(match, match, 0.3, 1.0, "match") if match else None
    return FrameResult([FaceAnalysis(detection, None, mesh, result)], {}, int(t * 15), t)


@pytest.mark.parametrize("challenged", [False, True])
def test_a_scheduled_challenge_is_asked_on_top_of_the_passive_liveness(challenged: bool) -> None:
    """Liveness off stands for "the passive evidence is there": unchallenged, the
    member passes once agreed; challenged, only the asked evidence seen after
    the prompt lets them in, and its absence fails at the decision window."""
    decider = DoorDecider(None, AgreementConfig(), LivenessConfig(mode="off"), 1.0, 8)
    decider.wants_challenge = lambda: challenged

    def agree(start: float) -> Attempt | None:
        outcome = None
        for i in range(3):
            t = start + i / 15
            assert decider.feed(_frame(t, None), t) is None
            outcome = decider.feed_match(_frame(t, "m1"), t)
        return outcome

    outcome = agree(100.0)
    prompt = decider.take_prompt()
    if not challenged:
        assert prompt is None and outcome is not None and outcome.passed
        return
    assert outcome is None and prompt in ("blink", "turn_left", "turn_right")
    # The head stays still with open eyes: not what was asked.
    for i in range(3, 40):
        t = 100.0 + i / 15
        outcome = decider.feed(_frame(t, None), t)
        if outcome is not None:
            break
    assert outcome is not None and not outcome.passed and outcome.reason == "liveness_failed"
    assert outcome.liveness is not None and "challenge" in outcome.liveness.reason
    # Again, and this time the member does what the display asks.
    assert agree(200.0) is None
    prompt = decider.take_prompt()
    turn = [0.0, 0.05, 0.12, 0.2, 0.2, 0.2]
    yaws = {"turn_left": turn, "turn_right": [-y for y in turn]}.get(prompt or "", [0.0] * 6)
    lids = [0.07, 0.03, 0.02, 0.07, 0.07, 0.07] if prompt == "blink" else [0.07] * 6
    for i, (yaw, lid) in enumerate(zip(yaws, lids, strict=True)):
        t = 200.2 + i / 15
        outcome = decider.feed(_frame(t, None, yaw, lid), t)
        if outcome is not None:
            break
    assert outcome is not None and outcome.passed, (prompt, outcome)
