"""The members' website in headless Chromium against a real ``coresync-cloud
demo``: log in with the printed demo login, filter and search the shop, order
two products for pickup, see and cancel the order (stock comes back), the
concierge by tier, my data as JSON, profile errors next to their fields."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from cloud_api.demo import MEMBER_PASSWORDS
from edge.shop.demo_seed import CATALOGUE
from edge.shop.money import order_totals
from tests.site_demo import DemoCloud, browser, demo, log_in, new_page

__all__ = ["browser", "demo"]


async def slugs_shown(page: Any) -> list[str]:
    return [str(s) for s in await page.locator("li.product").evaluate_all(
        "cards => cards.map(c => c.dataset.slug)")]  # fmt: skip


async def test_member_shops_orders_for_pickup_and_cancels(demo: DemoCloud, browser: Any) -> None:
    page = await new_page(browser, demo)
    await log_in(page, demo, demo.email, demo.password)
    # Filter: the category buttons carry counts; featured products come first.
    skincare = [row for row in CATALOGUE if row[2] == "skincare"]
    await page.get_by_role("button", name=f"Skincare ({len(skincare)})").click()
    featured = sorted(r[1] for r in skincare if r[6])
    shown = await slugs_shown(page)
    assert sorted(shown) == sorted(r[0] for r in skincare)
    names = {r[0]: r[1] for r in skincare}
    assert [names[s] for s in shown[: len(featured)]] == featured
    # Search over names and descriptions (within the chosen category, or all).
    await page.get_by_role("button", name="All", exact=True).click()
    await page.get_by_label("Search").fill("lymphatic")  # only in the jade roller's text
    await page.get_by_role("button", name="Search", exact=True).click()
    await page.wait_for_url(re.compile(r"search=lymphatic"))
    assert await slugs_shown(page) == ["jade-roller"]
    card = page.locator('li.product[data-slug="jade-roller"]')
    assert await card.locator("s").text_content() == "Regular price $38.00"  # struck through
    assert await card.locator(".price strong").text_content() == "Member price $30.40"
    # Two products into the cart.
    before = {s: await asyncio.to_thread(demo.stock, s) for s in ("jade-roller", "waffle-robe")}
    await card.get_by_role("button", name="Add to cart").click()
    await page.goto(demo.url + "/shop/waffle-robe")
    assert "20.0 % off" in await page.locator("article").inner_text()
    await page.get_by_role("button", name="Add to cart").click()
    await page.wait_for_url(demo.url + "/cart")
    units = [(await _price(page, slug), 1) for slug in ("jade-roller", "waffle-robe")]
    rate = rate_of(await page.locator("dt").nth(1).inner_text())
    subtotal, tax, total = order_totals(units, rate)
    assert await page.locator("#subtotal").inner_text() == f"${subtotal}"
    assert await page.locator("#tax").inner_text() == f"${tax}"
    assert await page.locator("#total").inner_text() == f"${total}"
    # Place it at the chain's site, with a note.
    await page.get_by_label("Pickup site").select_option(label="CoreSync Brooklyn")
    await page.get_by_label("Notes for the spa (optional)").fill("Gift wrap, please")
    await page.get_by_role("button", name="Place order").click()
    await page.wait_for_url(re.compile(r"/orders\?placed=PO-\d{4}-\d{6}$"))
    number = page.url.rsplit("=", 1)[1]
    order = page.locator(f'article.order[data-number="{number}"]')
    assert "pending" in await order.inner_text()
    assert f"Total ${total}" in await order.inner_text()
    assert await page.locator("nav").first.get_by_text("Cart (0)").count() == 1
    after = {s: await asyncio.to_thread(demo.stock, s) for s in before}
    assert after == {s: n - 1 for s, n in before.items()}
    # Cancel it: the stock comes back.
    await order.get_by_role("button", name=re.compile("Cancel order")).click()
    await page.wait_for_url(demo.url + "/orders")
    assert "cancelled" in await page.locator(f'article.order[data-number="{number}"]').inner_text()
    assert await page.locator(f'article.order[data-number="{number}"] button').count() == 0
    assert {s: await asyncio.to_thread(demo.stock, s) for s in before} == before


async def _price(page: Any, slug: str) -> Decimal:
    cells = page.locator(f'tr[data-slug="{slug}"] td')
    return Decimal((await cells.nth(1).inner_text()).lstrip("$"))


def rate_of(label: str) -> Decimal:
    return Decimal(re.search(r"\(([\d.]+) %\)", label).group(1)) / 100  # type: ignore[union-attr]


async def test_cart_shows_stock_problems_per_line_and_orders_nothing(
    demo: DemoCloud, browser: Any
) -> None:
    page = await new_page(browser, demo)
    await log_in(page, demo, "cleo@example.com", MEMBER_PASSWORDS["cleo@example.com"])
    await page.goto(demo.url + "/shop/charcoal-clay-mask")
    await page.get_by_role("button", name="Add to cart").click()
    stock = await asyncio.to_thread(demo.stock, "charcoal-clay-mask")
    await page.get_by_label("Quantity of Detox Charcoal Clay Mask").fill(str(stock + 1))
    await page.get_by_role("button", name="Place order").click()
    line = page.locator('tr[data-slug="charcoal-clay-mask"]')
    assert f"{stock + 1} wanted, {stock} in stock" in await line.inner_text()
    assert await asyncio.to_thread(demo.stock, "charcoal-clay-mask") == stock
    orders = await asyncio.to_thread(demo.api, "/api/v1/shop/orders", "demo-member-cleo")
    assert orders["total"] == 0  # never a half-made order
    # A date in the past is refused next to its field.
    await page.get_by_label("Quantity of Detox Charcoal Clay Mask").fill("1")
    await page.get_by_label("Pickup date (optional)").fill("2020-01-01")
    await page.get_by_role("button", name="Place order").click()
    assert await page.locator("#err-pickup_date").inner_text() == "must not be in the past"
    assert await page.get_by_label("Pickup date (optional)").get_attribute("aria-invalid") == "true"


async def test_concierge_refused_for_basic_and_taken_for_premium(
    demo: DemoCloud, browser: Any
) -> None:
    basic = await new_page(browser, demo)
    await log_in(basic, demo, "ben@example.com", MEMBER_PASSWORDS["ben@example.com"])
    await basic.goto(demo.url + "/concierge")
    assert "for active Premium and Unlimited members" in await basic.locator(
        "#concierge-tier").inner_text()  # fmt: skip
    assert await basic.get_by_role("button", name="Send request").count() == 0
    premium = await new_page(browser, demo)
    await log_in(premium, demo, demo.email, demo.password)  # Ava is Premium
    await premium.goto(demo.url + "/concierge")
    pickup = (date.today() + timedelta(days=6)).isoformat()
    await premium.get_by_label("Type").select_option("fresh_flowers")
    await premium.get_by_label("Title").fill("Peonies for Friday")
    await premium.get_by_label("Description").fill("A dozen pale pink peonies.")
    await premium.get_by_label("Budget from ($)").fill("90")
    await premium.get_by_label("Budget up to ($)").fill("60")
    await premium.get_by_label(re.compile("Preferred pickup date")).fill(pickup)
    await premium.get_by_role("button", name="Send request").click()
    # The shop's rule, shown next to its field; what was typed stays.
    assert await premium.locator("#err-budget_min").inner_text() == "must not exceed budget_max"
    assert await premium.get_by_label("Title").input_value() == "Peonies for Friday"
    await premium.get_by_label("Budget up to ($)").fill("120")
    await premium.get_by_role("button", name="Send request").click()
    await premium.wait_for_url(demo.url + "/concierge")
    request = premium.locator("article.request").first
    heading = await request.locator("h3").inner_text()
    assert re.match(r"CR-\d{4}-\d{6} · Peonies for Friday", heading)
    assert "pending" in await request.inner_text()
    await request.get_by_role("button", name=re.compile("Cancel request")).click()
    assert "cancelled" in await premium.locator("article.request").first.inner_text()


async def test_account_profile_and_data_export(demo: DemoCloud, browser: Any) -> None:
    page = await new_page(browser, demo)
    await log_in(page, demo, demo.email, demo.password)
    await page.goto(demo.url + "/account")
    await page.get_by_label("Phone").fill("not a phone")
    await page.get_by_role("button", name="Save").click()
    assert "should match pattern" in await page.locator("#err-phone").inner_text()
    await page.get_by_label("Phone").fill("+1 (551) 555-0199")
    await page.get_by_role("button", name="Save").click()
    await page.wait_for_url(demo.url + "/account?done=profile")
    assert await page.get_by_label("Phone").input_value() == "+1 (551) 555-0199"
    async with page.expect_download() as info:
        await page.get_by_role("link", name="Download my data").click()
    download = await info.value
    saved = Path(await download.path())
    data = json.loads(await asyncio.to_thread(saved.read_text))
    assert data["member"]["email"] == demo.email
    assert data["member"]["phone"] == "+1 (551) 555-0199"
    assert {"orders", "concierge_requests", "face_access_consent", "attendance",
            "deletion_requests", "website_sessions"} <= set(data)  # fmt: skip
    assert data["website_sessions"] and "token" not in json.dumps(data["website_sessions"])
    assert "password_hash" not in json.dumps(data)
    assert "template" not in json.dumps(data).lower().replace("templates never", "")
