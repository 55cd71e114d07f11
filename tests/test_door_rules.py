"""Access rules at the edge, no network: hours per tier, the site's opening hours
and holidays, membership, consent, staff-only doors.  The clock is the test's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from edge.door.decision import Attempt
from edge.door.rules import AccessRules, access_refusal
from edge.door.service import DoorService
from edge.opening_hours import OpeningHours
from tests.conftest import Broker
from tests.test_api_support import ApiSite, start_api_site, stop_api_site
from tests.test_door_service import door_config, new_member

NY = ZoneInfo("America/New_York")
# Monday 7 December 2026, New York time.
MONDAY_10 = datetime(2026, 12, 7, 10, 0, tzinfo=NY)
MONDAY_13 = datetime(2026, 12, 7, 13, 0, tzinfo=NY)
MONDAY_22 = datetime(2026, 12, 7, 22, 0, tzinfo=NY)
SITE_HOURS = OpeningHours.model_validate(
    {"monday": ["07:00-21:00"], "holidays": [date(2026, 12, 25)]}
)
BASIC_MORNINGS = AccessRules.model_validate({"tier_hours": {"basic": {"monday": ["07:00-12:00"]}}})


def refusal(rules: AccessRules, at: datetime, **member: Any) -> str | None:
    who = {"active": True, "tier": "basic", "consent": True, **member}
    return access_refusal(rules, SITE_HOURS, NY, at=at, **who)


def test_each_rule_refuses_by_name() -> None:
    assert refusal(BASIC_MORNINGS, MONDAY_10) is None
    assert refusal(BASIC_MORNINGS, MONDAY_13) == "outside_tier_hours"
    assert refusal(BASIC_MORNINGS, MONDAY_13, tier="premium") is None  # site hours only
    assert refusal(BASIC_MORNINGS, MONDAY_22, tier="premium") == "site_closed"
    christmas = datetime(2026, 12, 25, 10, 0, tzinfo=NY)  # a Friday, and a holiday
    assert refusal(AccessRules(), christmas, tier="premium") == "site_closed"
    assert refusal(BASIC_MORNINGS, MONDAY_10, active=False) == "membership_inactive"
    assert refusal(BASIC_MORNINGS, MONDAY_10, consent=False) == "no_consent"
    assert refusal(AccessRules(staff_only=True), MONDAY_10) == "staff_only_door"
    assert refusal(AccessRules(site_hours=False), MONDAY_22) is None
    # The instant is read in the site's zone: 15:00 UTC is 10:00 in New York.
    assert refusal(BASIC_MORNINGS, datetime(2026, 12, 7, 15, 0, tzinfo=UTC)) is None


@pytest.fixture
async def site(mqtt_broker: Broker, tmp_path: Path) -> AsyncIterator[ApiSite]:
    s = await start_api_site(mqtt_broker, tmp_path / "site")
    try:
        yield s
    finally:
        await stop_api_site(s)


async def test_member_outside_their_tier_hours_is_refused_with_the_rule_named(
    site: ApiSite, tmp_path: Path
) -> None:
    member = await new_member(site, "Rose Leslie")  # tier basic
    cfg = door_config(access={"tier_hours": {"basic": {"monday": ["07:00-12:00"]}}})
    door = DoorService(site.core, cfg, tmp_path / "door")
    await door.start()
    sub = site.core.events.subscribe(types={"door"})
    try:
        await door.grant_consent(member, "staff1", "door access by face")
        await door.set_pin(member, "4821", "staff1")
        face = Attempt(True, "recognised", member, 0.3, 0.4, None, {})

        # The test site's time zone is UTC: Monday 13:00 is past basic's 12:00.
        door.clock = lambda: datetime(2026, 12, 7, 13, 0, tzinfo=UTC)
        refused = await door.pin_unlock(member, "4821", "keypad-1")
        assert (refused.decision, refused.reason) == ("deny", "outside_tier_hours")
        by_face = await door.handle_attempt(face, {})
        assert (by_face.decision, by_face.reason) == ("deny", "outside_tier_hours")
        published = [(await sub.get()).data for _ in range(2)]
        assert [e["reason"] for e in published] == ["outside_tier_hours"] * 2
        resp = await site.client.get(
            "/api/v1/door-events", headers=site.auth("staff1")
        )  # what the dashboard's door page lists
        listed = (await resp.json())["events"]
        assert [e["reason"] for e in listed[:2]] == ["outside_tier_hours"] * 2

        door.clock = lambda: datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
        opened = await door.handle_attempt(face, {})
        assert (opened.decision, opened.reason) == ("unlock", "unlocked"), opened
    finally:
        sub.close()
        await door.stop()
