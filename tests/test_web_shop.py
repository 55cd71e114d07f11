"""The dashboard's shop pages in headless Chromium against the real API: a
counter order through the pickup queue, and the concierge queue.

Needs /usr/bin/chromium and Playwright (skipped with a message otherwise);
CORESYNC_SCREENSHOTS=<dir> saves screenshots of each page.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from edge.shop.demo_seed import seed_demo_shop
from tests.test_api_support import PASSWORDS, ApiSite, api
from tests.test_web_pages import base_url, browser, shot

__all__ = ["api", "browser"]


async def staff_page(api: ApiSite, browser: Any, hash_: str) -> Any:
    page = await browser.new_page(viewport={"width": 1440, "height": 900}, bypass_csp=True)
    await page.goto(base_url(api) + "/dashboard" + hash_)
    await page.fill("#username", "staff1")
    await page.fill("#password", PASSWORDS["staff1"])
    await page.click("#login button[type=submit]")
    return page


async def test_counter_order_goes_through_the_pickup_queue(api: ApiSite, browser: Any) -> None:
    members = await api.core.run_shop(seed_demo_shop)
    page = await staff_page(api, browser, "#pickups")
    await page.locator('[data-column="pending"]').wait_for()
    assert await page.get_attribute('a[data-page="pickups"]', "class") == "active"
    await page.click('button[data-action="new-order"]')
    await page.fill("#member-search", "ava")
    await page.select_option("#order-member", label="Ava Premium · premium")
    await page.select_option(".order-line .line-product", "rose-hip-serum")
    await page.fill(".order-line .line-qty", "2")
    # Member price shown on the line, tax and total before submitting.
    assert "$54.40 each (member)" in await page.inner_text(".order-line .unit")
    assert await page.inner_text("#order-total") == "$117.50"
    await shot(page, "dashboard-pickups-new-order")
    await page.click('#counter-order button[type="submit"]')
    card = page.locator('[data-column="pending"] article.order')
    await card.wait_for()
    number = await card.get_attribute("data-order")
    assert number and number.startswith("PO-")
    assert "Ava Premium" in await card.inner_text()
    await card.locator('button[data-action="processing"]').click()
    moving = page.locator(f'[data-column="processing"] [data-order="{number}"]')
    await moving.locator('button[data-action="ready"]').click()
    ready = page.locator(f'[data-column="ready"] [data-order="{number}"]')
    await ready.wait_for()
    assert "$117.50" in await ready.inner_text()
    # An order placed elsewhere shows up live (WebSocket "shop" event), and cancelling
    # asks for confirmation first.
    ben = members["ben@example.com"]
    resp = await api.client.post(
        "/api/v1/shop/orders",
        json={"member_id": ben.id, "items": [{"product": "jade-roller", "quantity": 1}]},
        headers=api.auth("manager1"),
    )
    other = (await resp.json())["number"]
    other_card = page.locator(f'[data-column="pending"] [data-order="{other}"]')
    await other_card.wait_for()
    await shot(page, "dashboard-pickups")
    await other_card.locator('button[data-action="cancel"]').click()
    await other_card.locator('button[data-action="confirm"]').click()
    await other_card.wait_for(state="detached")
    product = await api.core.run_shop(lambda shop: shop.get_product("jade-roller"))
    assert product.stock == 30
    orders = await api.core.run_shop(lambda shop: shop.list_orders(status="ready"))
    assert [o.number for o in orders.items] == [number]
    await page.close()


async def test_concierge_request_is_approved_costed_and_checked(api: ApiSite, browser: Any) -> None:
    members = await api.core.run_shop(seed_demo_shop)
    ava = members["ava@example.com"]
    resp = await api.client.post(
        "/api/v1/shop/concierge/requests",
        json={
            "member_id": ava.id,
            "request_type": "premium_alcohol",
            "title": "Krug Grande Cuvée",
            "description": "One bottle, chilled, for an anniversary.",
            "budget_min": "180.00",
            "budget_max": "260.00",
            "preferred_pickup_date": (date.today() + timedelta(days=4)).isoformat(),
        },
        headers=api.auth("staff1"),
    )
    assert resp.status == 201, await resp.text()
    number = (await resp.json())["number"]
    page = await staff_page(api, browser, "#concierge")
    card = page.locator(f'[data-column="pending"] [data-request="{number}"]')
    await card.wait_for()
    text = await card.inner_text()
    assert "Premium alcohol" in text and "$180.00 – $260.00" in text
    assert "needed before hand-over" in text
    await card.locator('button[data-action="approve"]').click()
    approved = page.locator(f'[data-column="approved"] [data-request="{number}"]')
    await approved.locator('button[data-action="cost"]').click()
    await approved.locator("input").fill("215.50")
    await approved.locator('button[data-action="confirm"]').click()
    await page.locator(f'[data-request="{number}"] >> text=within budget').wait_for()
    await page.locator(f'[data-request="{number}"] button[data-action="verify-age"]').click()
    await page.locator(f'[data-request="{number}"] >> text=verified · staff1').wait_for()
    await shot(page, "dashboard-concierge")
    req = await api.core.run_shop(lambda shop: shop.list_requests(status="approved"))
    assert [(r.number, str(r.actual_cost)) for r in req.items] == [(number, "215.50")]
    await page.click('a[data-page="low-stock"]')
    await page.locator("#low-stock-list table").wait_for()
    assert "Organic Ashwagandha" in await page.inner_text("#low-stock-list")
    await shot(page, "dashboard-low-stock")
    await page.close()
