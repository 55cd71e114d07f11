"""Security modes per door and per schedule: face only, face or PIN, face and PIN.
Real site (Mosquitto, simulated lock), the real PIN path; a face attempt is the
decider's outcome handed to the service (recognition is tested elsewhere)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from edge.door.decision import Attempt
from edge.door.service import DoorService
from tests.test_api_support import ApiSite
from tests.test_door_service import door_config, new_member, site  # noqa: F401

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
        {"scheduled_mode": "face_and_pin", "scheduled_hours": night, "second_factor_s": 30},
    )
    try:
        # By day the usual face_or_pin: the PIN alone opens.
        assert (await door.pin_unlock(member, "4821", "keypad-1")).decision == "unlock"
        door.clock = lambda: MONDAY_NIGHT
        first = await door.handle_attempt(face(member), {})
        assert (first.decision, first.reason) == ("pending", "awaiting_pin")
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
