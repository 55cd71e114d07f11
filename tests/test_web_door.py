"""The dashboard's door pages in headless Chromium against the real API and a
real door service: consent, enrollment with per-photo quality verdicts, PIN,
withdrawal, export download; the live door event feed and remote unlock.

Needs /usr/bin/chromium and Playwright (skipped with a message otherwise);
CORESYNC_SCREENSHOTS=<dir> saves screenshots of each page.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edge.door.service import DoorService
from tests.test_api_support import PASSWORDS, ApiSite, api
from tests.test_door_service import door_config, door_with, new_member
from tests.test_web_pages import base_url, browser, shot

__all__ = ["api", "browser"]


@pytest.fixture
async def door(api: ApiSite, tmp_path: Path) -> AsyncIterator[DoorService]:
    d = await door_with(api, tmp_path, door_config())
    try:
        yield d
    finally:
        await d.stop()


async def staff_page(api: ApiSite, browser: Any, hash_: str, user: str = "staff1") -> Any:
    page = await browser.new_page(viewport={"width": 1440, "height": 900}, bypass_csp=True)
    await page.goto(base_url(api) + "/dashboard" + hash_)
    await page.fill("#username", user)
    await page.fill("#password", PASSWORDS[user])
    await page.click("#login button[type=submit]")
    return page


async def test_members_consent_enroll_pin_withdraw(
    api: ApiSite, browser: Any, door: DoorService, shared_faces: Path
) -> None:
    alex = await new_member(api, "Alex Lacamoire")
    await new_member(api, "Rose Leslie")
    page = await staff_page(api, browser, "#members")
    row = page.locator(f'tr[data-member="{alex}"]')
    await row.wait_for()
    assert await row.get_attribute("data-consent") == "none"
    assert await row.locator('button[data-action="enroll"]').count() == 0  # consent first
    await shot(page, "dashboard-members")

    await row.locator('button[data-action="consent"]').click()
    form = page.locator("#consent-form")
    assert await form.locator("input[readonly]").input_value() == "staff1"  # the witness
    await form.locator('input[name="retention_days"]').fill("365")
    await form.locator('input[name="agreed"]').check()
    await shot(page, "dashboard-members-consent")
    await form.locator('button[type="submit"]').click()
    await page.locator(f'tr[data-member="{alex}"][data-consent="active"]').wait_for()
    history = await door.vault.consent_history(alex)
    assert [(h["action"], h["witness"], h["retention_days"]) for h in history] == [
        ("grant", "staff1", 365)
    ]

    # Enrollment: a bad set first; every photo gets its verdict, nothing stored.
    good = sorted((shared_faces / "dev" / "alex_lacamoire").iterdir())
    not_photo = Path(__file__)
    bad = [good[0], shared_faces / "scenes" / "two_people.jpg", not_photo]
    await page.locator(f'tr[data-member="{alex}"] button[data-action="enroll"]').click()
    await page.set_input_files('#enroll-form input[type="file"]', [str(p) for p in bad])
    await page.click("#enroll-submit")
    results = page.locator("#enroll-results")
    await results.locator("li.bad").first.wait_for()
    assert await results.locator(f'li.ok[data-photo="{good[0].name}"]').count() == 1
    two = results.locator('li.bad[data-photo="two_people.jpg"] li')
    assert await two.count() >= 1 and await two.first.inner_text()
    assert await results.locator(f'li.bad[data-photo="{not_photo.name}"]').inner_text() != ""
    assert "not a JPEG/PNG image" in await results.inner_text()
    await shot(page, "dashboard-members-enroll-rejected")
    assert await door.vault.template_count(alex) == 0

    await page.set_input_files('#enroll-form input[type="file"]', [str(p) for p in good])
    await page.click("#enroll-submit")
    await page.locator(f'tr[data-member="{alex}"] [data-role="templates"]:text-is("3")').wait_for()
    assert await door.vault.template_count(alex) == 3

    # PIN.
    await page.locator(f'tr[data-member="{alex}"] button[data-action="pin"]').click()
    await page.fill('#pin-form input[name="pin"]', "4821")
    await page.click('#pin-form button[type="submit"]')
    await page.locator(f'tr[data-member="{alex}"] >> text=set').wait_for()

    # Withdrawal asks first, then destroys the templates.
    await page.locator(f'tr[data-member="{alex}"] button[data-action="withdraw"]').click()
    assert "destroyed at once" in await page.inner_text("#member-panel")
    await page.click('button[data-action="confirm-withdraw"]')
    await page.locator(f'tr[data-member="{alex}"][data-consent="withdrawn"]').wait_for()
    assert await door.vault.template_count(alex) == 0
    assert await page.locator('button[data-action="export"]').count() == 0  # staff: no export
    await page.locator(f'tr[data-member="{alex}"] button[data-action="history"]').click()
    await page.locator("#member-panel table").wait_for()
    rows = await page.locator("#member-panel tbody tr").all_inner_texts()
    assert len(rows) == 2 and "grant" in rows[0] and "withdraw" in rows[1]
    await shot(page, "dashboard-members-history")
    await page.close()

    # A manager downloads the export.
    page = await staff_page(api, browser, "#members", "manager1")
    button = page.locator(f'tr[data-member="{alex}"] button[data-action="export"]')
    async with page.expect_download() as info:
        await button.click()
    download = await info.value
    assert download.suggested_filename == f"member-{alex}-export.json"
    saved = await download.path()
    data = json.loads(await asyncio.to_thread(Path(saved).read_text))
    assert data["member"]["name"] == "Alex Lacamoire"
    assert [c["action"] for c in data["consent_history"]] == ["grant", "withdraw"]
    assert data["face_templates"]["destructions"][0]["reason"] == "consent_withdrawn"
    await page.close()


async def test_door_events_live_feed_and_remote_unlock(
    api: ApiSite, browser: Any, door: DoorService
) -> None:
    member = await new_member(api, "Rose Leslie")
    await door.set_pin(member, "2468", "staff1")
    await door.pin_unlock(member, "0000", "keypad-test")  # one denial before the page opens
    page = await staff_page(api, browser, "#doors")
    table = page.locator("#door-events-table")
    await table.wait_for()
    assert await page.get_attribute('a[data-page="doors"]', "class") == "active"
    first = table.locator('tr[data-method="pin"][data-decision="deny"]')
    assert "Rose Leslie" in await first.inner_text() and "wrong pin" in await first.inner_text()
    status = page.locator("#door-status")
    await status.locator("text=no camera").wait_for()
    assert "entrance/door" in await status.inner_text()

    unlock = page.locator("#unlock-door")
    assert await unlock.is_disabled()  # a reason is required
    await page.fill("#unlock-reason", "courier delivery")
    await unlock.click()
    remote = table.locator('tr[data-method="remote"][data-decision="unlock"]')
    await remote.wait_for()  # arrived live over the WebSocket
    text = await remote.inner_text()
    assert "remote: courier delivery" in text and "staff:staff1" in text

    # A keypad PIN unlock elsewhere shows up live, at the top.
    await door.pin_unlock(member, "2468", "keypad-test")
    top = table.locator("tbody tr").first
    await page.locator(
        '#door-events-table tbody tr:first-child[data-method="pin"][data-decision="unlock"]'
    ).wait_for()
    assert "Rose Leslie" in await top.inner_text()
    await shot(page, "dashboard-door-events")
    await page.close()
