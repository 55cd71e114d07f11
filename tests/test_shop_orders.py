"""Pickup orders: pricing, tax, stock, atomicity, cancellation, concurrency (both backends)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from edge.shop import (
    InvalidTransition,
    Member,
    NotFound,
    OutOfStock,
    Shop,
    ShopConfig,
    ValidationFailed,
)
from edge.shop.testing import MutableClock, make_shop, postgres_unreachable
from tests.parts import missing

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres" and (why := postgres_unreachable()):
        missing("PostgreSQL", why)
    return str(request.param)


@pytest.fixture
def shop(backend: str, tmp_path: Path) -> Iterator[Shop]:
    clock = MutableClock(datetime(2026, 3, 10, 15, 0, tzinfo=UTC))
    with make_shop(backend, tmp_path, clock=clock) as s:
        s.create_product(
            {"name": "Rose Serum", "slug": "serum", "category": "skincare",
             "price": "49.99", "member_price": "39.99"},
            initial_stock=10,
        )  # fmt: skip
        s.create_product(
            {"name": "Jade Roller", "slug": "roller", "category": "accessories", "price": "25.00"},
            initial_stock=3,
        )
        yield s


def member(shop: Shop, n: int = 1, *, active: bool = True, tier: str = "premium") -> Member:
    return shop.create_member(
        {"name": f"Member {n}", "email": f"m{n}@example.com", "phone": "+1 555 0100",
         "date_of_birth": "1990-05-01", "tier": tier, "active": active}
    )  # fmt: skip


def order(*items: tuple[str, int], **extra: Any) -> dict[str, Any]:
    return {"items": [{"product": s, "quantity": q} for s, q in items], **extra}


def test_active_member_pays_member_price_with_8_percent_tax(shop: Shop) -> None:
    m = member(shop)
    o = shop.create_order(m.id, order(("serum", 2), ("roller", 1)))
    assert o.number.startswith("PO-2026-") and o.status == "pending"
    assert [(i.unit_price, i.line_total) for i in o.items] == [
        (Decimal("39.99"), Decimal("79.98")),
        (Decimal("25.00"), Decimal("25.00")),
    ]
    assert o.subtotal == Decimal("104.98")
    assert o.tax == Decimal("8.40")  # 8.3984 rounded half-up
    assert o.total == o.subtotal + o.tax == Decimal("113.38")
    assert shop.get_product("serum").stock == 8
    assert shop.ledger_mismatches() == []


def test_inactive_membership_pays_regular_price(shop: Shop) -> None:
    o = shop.create_order(member(shop, active=False).id, order(("serum", 1)))
    assert o.items[0].unit_price == Decimal("49.99")


def test_tax_rounds_half_up_per_site_rate(backend: str, tmp_path: Path) -> None:
    with make_shop(backend, tmp_path, ShopConfig(tax_rate=Decimal("0.05"))) as s:
        s.create_product({"name": "Pin", "slug": "pin", "category": "accessories",
                          "price": "0.10"}, initial_stock=1)  # fmt: skip
        o = s.create_order(member(s).id, order(("pin", 1)))
    assert o.tax == Decimal("0.01")  # 0.005 → 0.01 (banker's rounding would give 0.00)


def test_unit_price_is_frozen_at_order_time(shop: Shop) -> None:
    o = shop.create_order(member(shop).id, order(("roller", 1)))
    shop.update_product("roller", {"price": "99.00"})
    assert shop.get_order(o.id).items[0].unit_price == Decimal("25.00")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"items": []}, "items"),
        (order(("serum", 0)), "items[0].quantity"),
        (order(("serum", -2)), "items[0].quantity"),
        (order(("serum", 1), ("nope", 1)), "items[1].product"),
        (order(("serum", 1), ("serum", 1)), "items"),
        ({"items": [{"product": "serum", "quantity": 1, "note": "n" * 256}]}, "items[0].note"),
        (order(("serum", 1), pickup_date="2026-03-09"), "pickup_date"),
        (order(("serum", 1), pickup_date="yesterday"), "pickup_date"),
        (order(("serum", 1), coupon="FREE"), "coupon"),
    ],
)
def test_bad_orders_name_the_field(shop: Shop, body: dict[str, Any], field: str) -> None:
    m = member(shop)
    with pytest.raises(ValidationFailed) as info:
        shop.create_order(m.id, body)
    assert info.value.field == field
    assert shop.list_orders().total == 0


def test_inactive_product_cannot_be_ordered(shop: Shop) -> None:
    shop.deactivate_product("roller")
    with pytest.raises(ValidationFailed) as info:
        shop.create_order(member(shop).id, order(("roller", 1)))
    assert info.value.field == "items[0].product"


def test_stock_must_cover_every_line(shop: Shop) -> None:
    with pytest.raises(OutOfStock) as info:
        shop.create_order(member(shop).id, order(("serum", 1), ("roller", 4)))
    assert info.value.field == "items[1].quantity"
    assert shop.get_product("serum").stock == 10
    assert shop.list_orders().total == 0


def test_failure_midway_leaves_no_trace(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    m = member(shop)
    outbox_before = len(shop.outbox())

    def failing(*args: Any) -> None:  # the stock has moved, the order is not written yet
        raise RuntimeError("power cut after the stock moves")

    monkeypatch.setattr(Shop, "_outbox_insert", failing)
    with pytest.raises(RuntimeError):
        shop.create_order(m.id, order(("serum", 2), ("roller", 1)))
    monkeypatch.undo()
    assert shop.list_orders().total == 0
    assert shop.get_product("serum").stock == 10 and shop.get_product("roller").stock == 3
    assert len(shop.outbox()) == outbox_before
    assert [r["kind"] for r in shop.stock_ledger("serum")] == ["restock"]
    # The number was not consumed either: the next order gets the first one.
    assert shop.create_order(m.id, order(("serum", 1))).number == "PO-2026-000001"


def test_status_flow_and_cancellation_rules(shop: Shop) -> None:
    m = member(shop)
    o = shop.create_order(m.id, order(("serum", 3)))
    with pytest.raises(InvalidTransition):
        shop.set_order_status(o.id, {"status": "ready"})
    assert shop.set_order_status(o.id, {"status": "processing"}).status == "processing"
    cancelled = shop.cancel_order(o.id, member_id=m.id)
    assert cancelled.status == "cancelled"
    assert shop.get_product("serum").stock == 10
    assert [(r["kind"], r["delta"]) for r in shop.stock_ledger("serum")][-2:] == [
        ("sale", -3),
        ("cancellation", 3),
    ]
    with pytest.raises(InvalidTransition):
        shop.cancel_order(o.id)
    done = shop.create_order(m.id, order(("serum", 1)))
    for status in ("processing", "ready"):
        shop.set_order_status(done.id, {"status": status, "staff_notes": "bagged"})
    with pytest.raises(InvalidTransition):
        shop.cancel_order(done.id)
    completed = shop.set_order_status(done.id, {"status": "completed"})
    assert completed.status == "completed" and completed.staff_notes == "bagged"
    assert shop.ledger_mismatches() == []


def test_members_only_see_their_own_orders(shop: Shop) -> None:
    a, b = member(shop, 1), member(shop, 2)
    o = shop.create_order(a.id, order(("serum", 1)))
    with pytest.raises(NotFound):
        shop.get_order(o.id, member_id=b.id)
    with pytest.raises(NotFound):
        shop.cancel_order(o.id, member_id=b.id)
    assert shop.list_orders(member_id=b.id).total == 0
    assert [x.id for x in shop.list_orders(member_id=a.id).items] == [o.id]


def test_payment_and_accounting_are_recorded(shop: Shop) -> None:
    o = shop.create_order(member(shop).id, order(("serum", 1), pickup_date="2026-03-12"))
    assert o.pickup_date == date(2026, 3, 12)
    paid = shop.record_payment(o.id, {"payment_ref": "pi_123"})
    assert paid.payment_ref == "pi_123" and paid.paid_at is not None
    failed = shop.record_accounting(o.id, error="QuickBooks timeout")
    assert not failed.accounting_synced and failed.accounting_error == "QuickBooks timeout"
    synced = shop.record_accounting(o.id, invoice_id="INV-9")
    assert synced.accounting_synced and synced.invoice_id == "INV-9"
    assert synced.accounting_error is None


def test_order_changes_reach_the_outbox(shop: Shop) -> None:
    o = shop.create_order(member(shop).id, order(("serum", 1)))
    shop.cancel_order(o.id)
    ops = [(e["entity"], e["op"]) for e in shop.outbox() if e["entity_id"] == o.id]
    assert ops == [("order", "create"), ("order", "cancel")]
    created = next(e for e in shop.outbox() if e["op"] == "create" and e["entity_id"] == o.id)
    assert created["payload"]["total"] == str(o.total)


def test_many_members_race_for_the_last_units(shop: Shop) -> None:
    buyers = [member(shop, n) for n in range(24)]
    start = threading.Barrier(len(buyers))

    def buy(m: Member) -> str:
        start.wait()
        try:
            shop.create_order(m.id, order(("roller", 1)))
            return "ok"
        except OutOfStock:
            return "out"

    with ThreadPoolExecutor(len(buyers)) as pool:
        results = list(pool.map(buy, buyers))
    assert results.count("ok") == 3 and results.count("out") == 21
    assert shop.get_product("roller").stock == 0
    assert shop.ledger_mismatches() == []
    numbers = [o.number for o in shop.list_orders(page_size=100).items]
    assert len(numbers) == len(set(numbers)) == 3


def test_crossed_multi_item_orders_do_not_deadlock(shop: Shop) -> None:
    shop.restock("roller", {"quantity": 20})
    buyers = [member(shop, n) for n in range(10)]
    start = threading.Barrier(len(buyers))

    def buy(n_m: tuple[int, Member]) -> None:
        n, m = n_m
        lines = [("serum", 1), ("roller", 1)] if n % 2 else [("roller", 1), ("serum", 1)]
        start.wait()
        shop.create_order(m.id, order(*lines))

    with ThreadPoolExecutor(len(buyers)) as pool:
        list(pool.map(buy, enumerate(buyers)))
    assert shop.get_product("serum").stock == 0 and shop.get_product("roller").stock == 13
    assert shop.ledger_mismatches() == []
