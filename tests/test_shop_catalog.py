"""Products, derived figures, catalogue queries and the stock ledger (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.shop import Conflict, NotFound, OutOfStock, Shop, StorageFailure, ValidationFailed
from edge.shop.testing import MutableClock, make_shop, postgres_unreachable
from tests.parts import missing


@pytest.fixture(params=["sqlite", "postgres"])
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shop]:
    if request.param == "postgres" and (why := postgres_unreachable()):
        missing("PostgreSQL", why)
    clock = MutableClock(datetime(2026, 3, 10, 15, 0, tzinfo=UTC))
    with make_shop(request.param, tmp_path, clock=clock) as s:
        yield s


def product(slug: str = "rose-serum", **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "Rose Serum",
        "slug": slug,
        "category": "skincare",
        "description": "Hydrating rose hip oil serum.",
        "short_description": "Glow in a bottle",
        "price": "49.99",
        "member_price": "39.99",
    }
    base.update(over)
    return base


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"short_description": "x" * 301}, "short_description"),
        ({"member_price": "49.99"}, "member_price"),
        ({"member_price": "60"}, "member_price"),
        ({"price": "-1"}, "price"),
        ({"member_price": "-0.01"}, "member_price"),
        ({"price": "1.005"}, "price"),
        ({"slug": "Not A Slug"}, "slug"),
        ({"category": "food"}, "category"),
        ({"low_stock_threshold": -1}, "low_stock_threshold"),
        ({"image_url": "javascript:alert(1)"}, "image_url"),
        ({"gallery": ["https://a.example/1.jpg", "nope"]}, "gallery[1]"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_product_rules_refuse_bad_fields(shop: Shop, override: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        shop.create_product(product(**override))
    assert info.value.field == field


def test_slug_is_unique(shop: Shop) -> None:
    shop.create_product(product())
    with pytest.raises(Conflict) as info:
        shop.create_product(product(name="Other"))
    assert info.value.field == "slug"


def test_derived_savings_discount_and_stock_flags(shop: Shop) -> None:
    p = shop.create_product(product(price="30.00", member_price="20.00"), initial_stock=5)
    assert p.savings == Decimal("10.00")
    assert p.discount_percent == Decimal("33.3")
    assert p.low_stock_threshold == 5
    assert p.in_stock and p.low_stock
    p = shop.restock("rose-serum", {"quantity": 1})
    assert p.in_stock and not p.low_stock
    free = shop.create_product(product("sample", price="0", member_price=None))
    assert free.discount_percent == Decimal("0.0") and free.savings == Decimal("0.00")
    assert not free.in_stock and not free.low_stock


def test_update_revalidates_the_merged_product(shop: Shop) -> None:
    shop.create_product(product())
    with pytest.raises(ValidationFailed) as info:
        shop.update_product("rose-serum", {"price": "30.00"})
    assert info.value.field == "member_price"
    updated = shop.update_product("rose-serum", {"price": "59.00", "featured": True})
    assert updated.price == Decimal("59.00") and updated.featured


def test_inactive_products_leave_the_catalogue(shop: Shop) -> None:
    shop.create_product(product())
    shop.deactivate_product("rose-serum")
    with pytest.raises(NotFound):
        shop.get_product("rose-serum")
    assert shop.get_product("rose-serum", include_inactive=True).active is False
    assert shop.list_products().total == 0
    assert shop.categories()[0] == {"category": "skincare", "count": 0}


def _seed(shop: Shop) -> None:
    shop.create_product(product("b-cream", name="Body Cream", category="skincare"))
    shop.create_product(product("a-mask", name="Aloe Mask", category="skincare", featured=True))
    shop.create_product(
        product("lamp", name="Salt Lamp", category="wellness_tech", description="Pink 100% salt")
    )
    shop.create_product(
        product("robe", name="Robe", category="accessories", short_description="Waffle cotton")
    )
    shop.create_product(product("zinc", name="Zinc", category="supplements", active=False))


def test_catalogue_filters_search_order_and_pages(shop: Shop) -> None:
    _seed(shop)
    assert [p.slug for p in shop.list_products().items] == ["robe", "a-mask", "b-cream", "lamp"]
    assert [p.slug for p in shop.list_products({"category": "skincare"}).items] == [
        "a-mask",
        "b-cream",
    ]
    assert [p.slug for p in shop.list_products({"featured": True}).items] == ["a-mask"]
    first = shop.list_products({"featured_first": True, "page_size": 2})  # the website's order
    assert [p.slug for p in first.items] == ["a-mask", "robe"] and first.total == 4
    assert [p.slug for p in shop.list_products({"search": "ALOE"}).items] == ["a-mask"]
    assert [p.slug for p in shop.list_products({"search": "waffle"}).items] == ["robe"]
    assert [p.slug for p in shop.list_products({"search": "100%"}).items] == ["lamp"]
    assert shop.list_products({"search": "%"}).total == 1  # literal, not a wildcard
    page = shop.list_products({"page": 2, "page_size": 3})
    assert page.total == 4 and [p.slug for p in page.items] == ["lamp"]
    counts = {c["category"]: c["count"] for c in shop.categories()}
    assert counts == {"skincare": 2, "wellness_tech": 1, "accessories": 1, "supplements": 0}


def test_catalogue_query_is_validated(shop: Shop) -> None:
    with pytest.raises(ValidationFailed) as info:
        shop.list_products({"page_size": 1000})
    assert info.value.field == "page_size"


def test_stock_moves_only_through_ledger_rows(shop: Shop) -> None:
    shop.create_product(product(), initial_stock=4)
    shop.restock("rose-serum", {"quantity": 6, "note": "delivery"})
    shop.adjust_stock("rose-serum", {"delta": -3, "reason": "broken bottles"})
    with pytest.raises(OutOfStock):
        shop.adjust_stock("rose-serum", {"delta": -8, "reason": "count"})
    with pytest.raises(ValidationFailed) as info:
        shop.adjust_stock("rose-serum", {"delta": 0, "reason": "nothing"})
    assert info.value.field == "delta"
    ledger = shop.stock_ledger("rose-serum")
    assert [(r["kind"], r["delta"]) for r in ledger] == [
        ("restock", 4),
        ("restock", 6),
        ("adjustment", -3),
    ]
    assert shop.get_product("rose-serum").stock == 7 == sum(r["delta"] for r in ledger)
    assert shop.ledger_mismatches() == []


def test_database_refuses_negative_stock_even_behind_the_domain(shop: Shop) -> None:
    shop.create_product(product())
    with pytest.raises(StorageFailure), shop.db.write() as tx:
        tx.execute("UPDATE products SET stock = -1 WHERE slug = 'rose-serum'")


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(moves=st.lists(st.integers(min_value=-20, max_value=20).filter(bool), max_size=12))
def test_cached_stock_always_equals_ledger_sum(shop: Shop, moves: list[int]) -> None:
    slug = f"p-{abs(hash(tuple(moves))) % 10**9}-{len(shop.list_products().items)}"
    shop.create_product(product(slug))
    expected = 0
    for delta in moves:
        try:
            shop.adjust_stock(slug, {"delta": delta, "reason": "test"})
            expected += delta
        except OutOfStock:
            assert expected + delta < 0
    assert shop.get_product(slug).stock == expected >= 0
    assert shop.ledger_mismatches() == []
