"""What the shop returns: frozen records built from rows, with a JSON form.

Money is ``Decimal``; ``to_json`` renders it as a string ("12.50") so no
client ever parses money as a float.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal
from typing import Any, Generic, TypeVar

from edge.shop.db import Row
from edge.shop.money import from_cents, percent_one_decimal

_PLAIN = frozenset({str, int, bool, float, type(None)})


def jsonable(value: Any) -> Any:
    if type(value) in _PLAIN:  # most values: nothing to convert (and cheap to tell)
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if hasattr(value, "to_json"):
        return value.to_json()
    return value


_FIELDS: dict[type, tuple[str, ...]] = {}


class _Jsonable:
    def to_json(self) -> dict[str, Any]:
        names = _FIELDS.get(type(self))
        if names is None:  # once per record type (``fields`` is slow to ask every time)
            names = _FIELDS[type(self)] = tuple(f.name for f in fields(self))  # type: ignore[arg-type]
        return {name: jsonable(getattr(self, name)) for name in names}


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


@dataclass(frozen=True)
class Product(_Jsonable):
    id: str
    slug: str
    name: str
    category: str
    description: str
    short_description: str
    price: Decimal
    member_price: Decimal | None
    stock: int
    low_stock_threshold: int
    image_url: str | None
    gallery: tuple[str, ...]
    active: bool
    featured: bool
    accounting_item_id: str | None
    savings: Decimal
    discount_percent: Decimal
    in_stock: bool
    low_stock: bool

    def price_for(self, member_active: bool) -> Decimal:
        """The unit price a buyer pays: the member price while the membership is active."""
        if member_active and self.member_price is not None:
            return self.member_price
        return self.price

    @classmethod
    def from_row(cls, r: Row) -> Product:
        price = from_cents(r["price_cents"])
        member = None if r["member_price_cents"] is None else from_cents(r["member_price_cents"])
        savings = price - member if member is not None else Decimal("0.00")
        stock = int(r["stock"])
        threshold = int(r["low_stock_threshold"])
        return cls(
            id=r["id"],
            slug=r["slug"],
            name=r["name"],
            category=r["category"],
            description=r["description"],
            short_description=r["short_description"],
            price=price,
            member_price=member,
            stock=stock,
            low_stock_threshold=threshold,
            image_url=r["image_url"],
            gallery=tuple(json.loads(r["gallery"])),
            active=bool(r["active"]),
            featured=bool(r["featured"]),
            accounting_item_id=r["accounting_item_id"],
            savings=savings,
            discount_percent=percent_one_decimal(savings, price),
            in_stock=stock > 0,
            low_stock=0 < stock <= threshold,
        )


@dataclass(frozen=True)
class Member(_Jsonable):
    id: str
    name: str
    email: str
    phone: str
    date_of_birth: date
    tier: str
    active: bool

    @classmethod
    def from_row(cls, r: Row) -> Member:
        return cls(
            id=r["id"],
            name=r["name"],
            email=r["email"],
            phone=r["phone"],
            date_of_birth=date.fromisoformat(r["date_of_birth"]),
            tier=r["tier"],
            active=bool(r["active"]),
        )


@dataclass(frozen=True)
class OrderItem(_Jsonable):
    product_id: str
    product_name: str
    quantity: int
    unit_price: Decimal
    line_total: Decimal
    note: str | None

    @classmethod
    def from_row(cls, r: Row) -> OrderItem:
        return cls(
            product_id=r["product_id"],
            product_name=r["product_name"],
            quantity=int(r["quantity"]),
            unit_price=from_cents(r["unit_price_cents"]),
            line_total=from_cents(r["line_total_cents"]),
            note=r["note"],
        )


@dataclass(frozen=True)
class Order(_Jsonable):
    id: str
    number: str
    member_id: str
    status: str
    pickup_date: date | None
    booking_ref: str | None
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    tax_rate: Decimal
    payment_ref: str | None
    paid_at: str | None
    customer_notes: str
    staff_notes: str
    accounting_synced: bool
    invoice_id: str | None
    accounting_error: str | None
    created_at: str
    updated_at: str
    items: tuple[OrderItem, ...] = field(default=())
    site: str | None = None  # the pickup site (None: a one-site shop before sites)

    @classmethod
    def from_row(cls, r: Row, items: list[Row]) -> Order:
        return cls(
            id=r["id"],
            number=r["number"],
            member_id=r["member_id"],
            status=r["status"],
            pickup_date=_date(r["pickup_date"]),
            booking_ref=r["booking_ref"],
            subtotal=from_cents(r["subtotal_cents"]),
            tax=from_cents(r["tax_cents"]),
            total=from_cents(r["total_cents"]),
            tax_rate=Decimal(r["tax_rate"]),
            payment_ref=r["payment_ref"],
            paid_at=r["paid_at"],
            customer_notes=r["customer_notes"],
            staff_notes=r["staff_notes"],
            accounting_synced=bool(r["accounting_synced"]),
            invoice_id=r["invoice_id"],
            accounting_error=r["accounting_error"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            items=tuple(OrderItem.from_row(i) for i in items),
            site=r.get("site"),
        )


@dataclass(frozen=True)
class ConciergeRequest(_Jsonable):
    id: str
    number: str
    member_id: str
    request_type: str
    title: str
    description: str
    product_link: str | None
    budget_min: Decimal
    budget_max: Decimal
    actual_cost: Decimal | None
    preferred_pickup_date: date
    booking_ref: str | None
    status: str
    decline_reason: str | None
    staff_notes: str
    age_verified_at: str | None
    age_verified_by: str | None
    submitted_at: str
    reviewed_at: str | None
    completed_at: str | None
    within_budget: bool | None
    site: str | None = None  # the pickup site

    @classmethod
    def from_row(cls, r: Row) -> ConciergeRequest:
        lo, hi = from_cents(r["budget_min_cents"]), from_cents(r["budget_max_cents"])
        cost = None if r["actual_cost_cents"] is None else from_cents(r["actual_cost_cents"])
        return cls(
            id=r["id"],
            number=r["number"],
            member_id=r["member_id"],
            request_type=r["request_type"],
            title=r["title"],
            description=r["description"],
            product_link=r["product_link"],
            budget_min=lo,
            budget_max=hi,
            actual_cost=cost,
            preferred_pickup_date=date.fromisoformat(r["preferred_pickup_date"]),
            booking_ref=r["booking_ref"],
            status=r["status"],
            decline_reason=r["decline_reason"],
            staff_notes=r["staff_notes"],
            age_verified_at=r["age_verified_at"],
            age_verified_by=r["age_verified_by"],
            submitted_at=r["submitted_at"],
            reviewed_at=r["reviewed_at"],
            completed_at=r["completed_at"],
            # None while no cost is known: "within budget" is only defined with a cost.
            within_budget=None if cost is None else lo <= cost <= hi,
            site=r.get("site"),
        )


T = TypeVar("T", bound=_Jsonable)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    total: int
    page: int
    page_size: int

    def to_json(self) -> dict[str, Any]:
        return {
            "items": [i.to_json() for i in self.items],
            "total": self.total,
            "page": self.page,
            "page_size": self.page_size,
        }
