"""The staff dashboard in headless Chromium at phone and tablet sizes: every
page without horizontal overflow (measured in the page), status by icon and
word, revoked tablets hidden until asked, audit search, and dark mode."""

from __future__ import annotations

from typing import Any

import pytest

from tests.axe import serious_violations
from tests.test_api_support import PASSWORDS, ApiSite, api
from tests.test_web_pages import base_url, browser, shot

__all__ = ["api", "browser"]

SIZES = [(390, 844), (800, 1280), (1280, 800)]
PAGES = ["rooms", "doors", "tablets", "schedules", "alerts", "audit", "members", "pickups",
         "concierge", "low-stock", "sync"]  # fmt: skip


async def staff_page(api: ApiSite, browser: Any, width: int, height: int, hash_: str) -> Any:
    page = await browser.new_page(viewport={"width": width, "height": height}, bypass_csp=True)
    await page.goto(base_url(api) + "/dashboard" + hash_)
    await page.fill("#username", "manager1")
    await page.fill("#password", PASSWORDS["manager1"])
    await page.click("#login button[type=submit]")
    await page.locator("#page h1").first.wait_for()
    return page


async def overflow(page: Any) -> int:
    value: int = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return value


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_every_page_fits_without_horizontal_overflow(
    api: ApiSite, browser: Any, width: int, height: int
) -> None:
    await api.pair("room-a", "lobby tablet")
    page = await staff_page(api, browser, width, height, "#rooms")
    for name in PAGES:
        await page.evaluate(f"location.hash = '#{name}'")
        await page.locator(f'#nav a[data-page="{name}"].active').wait_for()
        await page.locator("#page h1").first.wait_for()
        assert await overflow(page) <= 0, f"{name} overflows at {width}x{height}"
        assert await serious_violations(page) == [], f"{name} at {width}x{height}"
        await shot(page, f"dashboard-{name}-{width}x{height}")
    await page.close()


async def test_status_icons_revoked_tablets_audit_search_and_dark_mode(
    api: ApiSite, browser: Any
) -> None:
    kept = await api.pair("room-a", "lobby tablet")
    gone = await api.pair("room-b", "old tablet")
    resp = await api.client.delete(
        f"/api/v1/tablets/{gone['tablet_id']}", headers=api.auth("admin")
    )
    assert resp.status == 200
    page = await staff_page(api, browser, 390, 844, "#rooms")
    ceiling = page.locator('[data-device="room-a/ceiling"] [data-role="avail"]')
    assert (await ceiling.inner_text()).strip() == "✓ online"

    await page.evaluate("location.hash = '#tablets'")
    table = page.locator("#page table")
    await table.wait_for()
    assert kept["tablet_id"] in await table.inner_text()
    assert gone["tablet_id"] not in await table.inner_text()
    await page.check("#show-revoked")
    await page.locator(f"#page table >> text={gone['tablet_id']}").wait_for()

    await page.evaluate("location.hash = '#audit'")
    await page.locator("#audit-search").wait_for()
    await page.fill("#audit-search", "tablet.revoke")
    rows = await page.locator("#page tbody tr").all_inner_texts()
    assert len(rows) == 1 and gone["tablet_id"] in rows[0], rows
    await page.fill("#audit-search", "no-such-thing-xyz")
    assert await page.locator("#page tbody tr").count() == 0

    background = "getComputedStyle(document.documentElement).backgroundColor"
    light = await page.evaluate(background)
    await page.click("#theme-switch")
    assert await page.evaluate("document.documentElement.dataset.theme") == "dark"
    dark = await page.evaluate(background)
    assert dark != light and await page.inner_text("#theme-switch") == "☀ Light mode"
    assert await serious_violations(page) == []
    await shot(page, "dashboard-audit-dark")
    await page.reload()  # the choice is remembered
    await page.locator("#page h1").first.wait_for()
    assert await page.evaluate("document.documentElement.dataset.theme") == "dark"
    await page.close()


async def test_rooms_page_is_a_control_panel_with_active_scene_and_chart(
    api: ApiSite, browser: Any
) -> None:
    page = await staff_page(api, browser, 1280, 800, "#rooms")
    card = page.locator('[data-room="room-a"]')
    await card.wait_for()
    # A device control within limits: the ceiling's toggle, then its state follows.
    await card.locator('[data-controls-for="room-a/ceiling"] [data-action="toggle"]').click()
    state = card.locator('[data-device="room-a/ceiling"] [data-role="state"]')
    await page.wait_for_function(
        "document.querySelector('[data-device=\"room-a/ceiling\"] [data-role=state]')"
        ".textContent.startsWith('on')"
    )
    assert (await state.inner_text()).startswith("on")
    await card.locator('[data-controls-for="room-a/climate"] button[aria-label$="warmer"]').click()
    await page.wait_for_function(
        "document.querySelector('[data-controls-for=\"room-a/climate\"]').textContent"
        ".includes('21.5 °C')"
    )
    rows = await api.core.store.commands()
    assert [(r["actor_id"], r["device_id"]) for r in rows][:2] == [
        ("manager1", "room-a/climate"),
        ("manager1", "room-a/ceiling"),
    ]
    # The active scene, live and after a reload (from the command log).
    await card.locator('button[data-scene="relax"]').click()
    active = card.locator('[data-role="active-scene"]')
    await page.wait_for_function(
        "document.querySelector('[data-room=\"room-a\"] [data-role=active-scene]')"
        ".textContent === 'Active scene: Relax'"
    )
    await page.reload()
    await active.wait_for()
    assert await active.inner_text() == "Active scene: Relax"
    # The climate device's stored history is drawn.
    chart = card.locator('[data-controls-for="room-a/climate"] ~ figure svg.history-chart')
    await chart.wait_for()
    assert "temperature" in (await chart.get_attribute("aria-label") or "")
    assert await serious_violations(page) == []
    await shot(page, "dashboard-rooms-panel")
    await page.close()
