"""Accessibility: axe-core (tests/axe.py: the file axe-playwright-python
ships) finds no serious or critical violation on any page of the members'
website, in its ordinary state and with field errors shown, on a phone-sized
and a desktop-sized screen."""

from __future__ import annotations

from typing import Any

import pytest

from cloud_api.demo import MEMBER_PASSWORDS
from tests.site_demo import (
    DemoCloud,
    axe_source,
    browser,
    demo,
    log_in,
    new_page,
    serious_violations,
)

__all__ = ["browser", "demo"]
PUBLIC = ("/login", "/privacy", "/terms", "/refunds")


@pytest.fixture(scope="module")
def axe() -> str:
    return axe_source()


async def check(page: Any, axe: str, found: dict[str, list[str]], what: str) -> None:
    problems = await serious_violations(page, axe)
    if problems:
        found[what] = problems


@pytest.mark.parametrize("width", [390, 1280])
async def test_no_serious_violation_on_any_page(
    demo: DemoCloud, browser: Any, axe: str, width: int
) -> None:
    found: dict[str, list[str]] = {}
    page = await new_page(browser, demo, width=width)
    for path in PUBLIC:
        await page.goto(demo.url + path)
        await check(page, axe, found, path)
    await log_in(page, demo, demo.email, demo.password)
    await check(page, axe, found, "/")
    await page.goto(demo.url + "/shop/magnesium-glycinate")
    await page.get_by_role("button", name="Add to cart").click()
    for path in ("/shop/rose-hip-serum", "/cart", "/concierge", "/account", "/privacy", "/nope"):
        await page.goto(demo.url + path)
        await check(page, axe, found, path)
    # States with errors next to their fields, and with an order and a request.
    await page.goto(demo.url + "/cart")
    await page.get_by_label("Pickup date (optional)").fill("2020-01-01")
    await page.get_by_role("button", name="Place order").click()
    await check(page, axe, found, "/cart with a field error")
    await page.get_by_label("Pickup date (optional)").fill("")
    await page.get_by_role("button", name="Place order").click()
    await page.wait_for_url(f"{demo.url}/orders?placed=*")
    await check(page, axe, found, "/orders")
    await page.locator("article.order h2 a").first.click()
    await check(page, axe, found, "/orders/<id>")
    await page.goto(demo.url + "/concierge")
    await page.get_by_role("button", name="Send request").click()
    await check(page, axe, found, "/concierge with field errors")
    await page.goto(demo.url + "/account")
    await page.get_by_role("button", name="Request account deletion").click()
    await check(page, axe, found, "/account with a field error")
    await page.goto(demo.url + "/?search=" + "x" * 101)
    await check(page, axe, found, "/ with a search error")
    basic = await new_page(browser, demo, width=width)
    await log_in(basic, demo, "ben@example.com", MEMBER_PASSWORDS["ben@example.com"])
    await basic.goto(demo.url + "/concierge")
    await check(basic, axe, found, "/concierge for a basic member")
    assert found == {}
    # The check itself can fail: an image without a text alternative is caught.
    await basic.evaluate("document.querySelector('main').append(document.createElement('img'))")
    assert any(p.startswith("image-alt (critical)") for p in await serious_violations(basic, axe))
