"""Door events on the dashboard with filters (decision, how, member, time)
and repeats folded into one row ("×3 in 1 min"), in headless Chromium
against the real API and door service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edge.door.service import DoorService
from tests.axe import serious_violations
from tests.test_api_support import ApiSite, api
from tests.test_door_service import door_config, door_with, new_member
from tests.test_web_door import staff_page
from tests.test_web_pages import browser, shot

__all__ = ["api", "browser"]


@pytest.fixture
async def door(api: ApiSite, tmp_path: Path) -> AsyncIterator[DoorService]:
    d = await door_with(api, tmp_path, door_config())
    try:
        yield d
    finally:
        await d.stop()


async def test_repeats_fold_into_one_row_and_filters_narrow_the_list(
    api: ApiSite, browser: Any, door: DoorService
) -> None:
    rose = await new_member(api, "Rose Leslie")
    alex = await new_member(api, "Alex Lacamoire")
    await door.set_pin(rose, "2468", "staff1")
    await door.set_pin(alex, "1357", "staff1")
    for _ in range(3):
        await door.pin_unlock(rose, "0000", "keypad-a")
    await door.pin_unlock(alex, "1357", "keypad-b")
    page = await staff_page(api, browser, "#doors")
    table = page.locator("#door-events-table")
    await table.wait_for()
    rows = table.locator("tbody tr")
    assert await rows.count() == 2  # three identical denials are one row
    folded = table.locator('tr[data-decision="deny"]')
    assert await folded.get_attribute("data-repeats") == "3"
    assert "×3 in 1 min" in await folded.inner_text()

    await page.select_option('#door-filters select[name="decision"]', "unlock")
    await page.locator('#door-events-table tbody tr[data-decision="unlock"]').wait_for()
    assert await rows.count() == 1 and "Alex Lacamoire" in await rows.first.inner_text()
    await page.select_option('#door-filters select[name="decision"]', "")
    await page.fill('#door-filters input[name="member"]', "rose")
    await page.locator('#door-events-table tbody tr[data-decision="deny"]').wait_for()
    assert await rows.count() == 1
    await page.fill('#door-filters input[name="member"]', "nobody-like-this")
    await page.locator("#door-events-none").wait_for()
    await page.fill('#door-filters input[name="member"]', "")
    await page.select_option('#door-filters select[name="since"]', "1")
    assert await rows.count() == 2

    # A live event arrives at the top, filters kept.
    await door.pin_unlock(alex, "1357", "keypad-b")
    await page.locator(
        '#door-events-table tbody tr:first-child[data-decision="unlock"][data-repeats="2"]'
    ).wait_for()
    assert await serious_violations(page) == []
    await shot(page, "dashboard-door-events-filtered")
    await page.close()


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (390, 844)])
async def test_members_page_fits(
    api: ApiSite, browser: Any, door: DoorService, width: int, height: int
) -> None:
    for name in ("Rose Leslie", "Alexandria Ocasio-Lacamoire", "Li Wei"):
        await new_member(api, name)
    page = await staff_page(api, browser, "#members", "manager1")
    await page.locator("tr[data-member]").first.wait_for()
    await page.set_viewport_size({"width": width, "height": height})
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"members page overflows by {overflow}px at {width}x{height}"
    assert await serious_violations(page) == []
    await shot(page, f"dashboard-members-listed-{width}x{height}")
    await page.close()
