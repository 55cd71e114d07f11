"""The staff dashboard and the room tablet page in headless Chromium, against
the real API and real (simulated Zigbee2MQTT) devices.

Needs the Debian ``chromium`` package (/usr/bin/chromium) and the Playwright
Python package; skipped with a message when either is missing.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edge.api.keys import WS_HUB
from tests.chromium import CHROMIUM, HAVE_CHROMIUM, launched
from tests.edge_site import wait_until
from tests.parts import missing
from tests.test_api_support import PASSWORDS, ApiSite, api

__all__ = ["api"]

# bypass_csp (in the tests' contexts): Playwright evaluates its wait
# expressions as strings, which the pages' Content-Security-Policy (rightly)
# forbids.
SCREENSHOTS = os.environ.get("CORESYNC_SCREENSHOTS")  # a directory, to look at the pages


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not HAVE_CHROMIUM:
        missing("Chromium", f"headless browser tests drive {CHROMIUM}")
    async with launched() as chromium:
        yield chromium


def base_url(api: ApiSite) -> str:
    return str(api.client.make_url("/")).rstrip("/")


async def shot(page: Any, name: str) -> None:
    if SCREENSHOTS:
        await page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


async def test_staff_logs_in_runs_a_scene_and_sees_state_live(api: ApiSite, browser: Any) -> None:
    page = await browser.new_page(viewport={"width": 1280, "height": 820}, bypass_csp=True)
    await page.goto(base_url(api) + "/dashboard")
    await page.fill("#username", "staff1")
    await page.fill("#password", PASSWORDS["staff1"])
    await page.click("#login button[type=submit]")
    card = page.locator('[data-room="room-a"]')
    await card.wait_for()
    ceiling = card.locator('[data-device="room-a/ceiling"] [data-role="state"]')
    assert await ceiling.inner_text() == "off"
    # A change made elsewhere (not by this page) arrives over the WebSocket.
    await api.client.post(
        "/api/v1/rooms/room-a/devices/ceiling/command",
        json={"on": True, "brightness": 20},
        headers=api.auth("admin"),
    )
    await page.wait_for_function(
        "document.querySelector('[data-device=\"room-a/ceiling\"] [data-role=state]')"
        ".textContent === 'on · 20 %'"
    )
    await card.locator('button[data-scene="bright"]').click()
    await page.wait_for_function(
        "document.querySelector('[data-device=\"room-a/ceiling\"] [data-role=state]')"
        ".textContent === 'on · 80 %'"
    )
    await shot(page, "dashboard-rooms")
    log = await api.core.store.commands()
    assert any(r["scene_id"] == "bright" and r["actor_id"] == "staff1" for r in log)
    # Tablets page: create a pairing code through the CSRF-protected cookie session.
    await page.click('a[data-page="tablets"]')
    await page.click("text=Create pairing code")
    await page.wait_for_function("document.getElementById('pair-code').textContent.length > 0")
    await shot(page, "dashboard-tablets")
    await page.close()


async def test_tablet_pairs_controls_its_room_and_is_refused_elsewhere(
    api: ApiSite, browser: Any
) -> None:
    resp = await api.client.post("/api/v1/rooms/room-a/pairing-codes", headers=api.auth("staff1"))
    code = (await resp.json())["code"]
    page = await browser.new_page(viewport={"width": 1024, "height": 768}, bypass_csp=True)
    await page.goto(base_url(api) + "/tablet")
    await page.fill("#code", code)
    await page.click("#pairing button[type=submit]")
    await page.locator('button[data-scene="relax"]').wait_for()
    assert await page.inner_text("#room-name") == "Treatment A"
    slider = page.locator('input[data-device="ceiling"]')
    assert await slider.get_attribute("min") == "5" and await slider.get_attribute("max") == "80"
    await page.wait_for_function("document.getElementById('status').dataset.state === 'live'")
    await page.click('button[data-scene="relax"]')
    await page.wait_for_function(
        "document.querySelector('[data-device=\"ceiling\"] [data-role=value]').textContent"
        " === '30 %'"
    )
    await shot(page, "tablet-room")
    # Colour: the picker sends the colour, the light takes it, the page shows it.
    await page.locator('[data-device="ceiling"] input[data-role="color"]').fill("#ff0000")
    ceiling = api.core.device("room-a", "ceiling")[0]
    await wait_until(
        lambda: (
            (xy := getattr(ceiling.snapshot().state, "color_xy", None)) is not None
            and abs(xy[0] - 0.6401) < 0.01
        )
    )
    # The page's token is refused on another room.
    status = await page.evaluate(
        """async () => {
            const token = localStorage.getItem('coresync.tablet.token');
            const r = await fetch('/api/v1/rooms/room-b',
                                  {headers: {Authorization: 'Bearer ' + token}});
            return [r.status, (await r.json()).error.code];
        }"""
    )
    assert status == [403, "forbidden"]
    # Revoking the tablet sends the page back to pairing.
    tablets = await (await api.client.get("/api/v1/tablets", headers=api.auth("staff1"))).json()
    tablet_id = tablets["tablets"][0]["tablet_id"]
    await api.client.delete(f"/api/v1/tablets/{tablet_id}", headers=api.auth("staff1"))
    await page.locator("#pairing").wait_for()  # revoked: back to the pairing form
    await page.close()


async def test_tablet_shows_offline_banner_when_the_socket_drops(
    api: ApiSite, browser: Any
) -> None:
    paired = await api.pair("room-b")
    page = await browser.new_page(bypass_csp=True)
    await page.goto(base_url(api) + "/tablet")
    await page.evaluate(
        "([t, r]) => { localStorage.setItem('coresync.tablet.token', t);"
        " localStorage.setItem('coresync.tablet.room', r); }",
        [paired["token"], paired["room_id"]],
    )
    await page.reload()
    await page.wait_for_function("document.getElementById('status').dataset.state === 'live'")
    assert await page.is_hidden("#offline")
    # The tablet may reconnect within milliseconds (full jitter), hiding the
    # banner again between two of Playwright's polls: record its showing as
    # it happens, in the page.
    await page.evaluate(
        """() => { const banner = document.getElementById('offline');
          new MutationObserver(() => { if (!banner.classList.contains('hidden'))
            window.offlineShown = true; }).observe(banner, { attributes: true }); }"""
    )
    # Close every server-side socket as a controller restart would (not a revocation).
    for client in list(api.client.app[WS_HUB].clients):
        await client.ws.close(code=1012)
    await page.wait_for_function("window.offlineShown === true")
    await shot(page, "tablet-offline")
    await page.wait_for_function("document.getElementById('status').dataset.state === 'live'")
    await page.close()
