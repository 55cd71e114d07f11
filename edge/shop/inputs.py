"""Validated inputs of the shop and concierge (pydantic v2, unknown keys refused).

The cloud API parses request bodies with these same models, so a rule is
stated once.  :func:`parse` turns a pydantic error into ``ValidationFailed``
naming the field (dotted path, list indexes in brackets).
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from drivers.config import ID_PATTERN
from edge.shop.errors import ValidationFailed
from edge.shop.statuses import OrderStatus, RequestStatus, Tier

Category = Literal["skincare", "wellness_tech", "accessories", "supplements"]
RequestType = Literal[
    "premium_alcohol",
    "fresh_flowers",
    "gourmet_food",
    "jewelry_accessories",
    "luxury_items",
    "gift_items",
    "other",
]
CATEGORIES: tuple[Category, ...] = ("skincare", "wellness_tech", "accessories", "supplements")

Money = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2, allow_inf_nan=False)]
Url = Annotated[str, Field(max_length=2000, pattern=r"^https?://[^\s/$.?#][^\s]*$")]
SLUG = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
Name = Annotated[str, Field(min_length=1, max_length=200, description="Full name.")]
Phone = Annotated[str, Field(pattern=r"^\+?[0-9 ()\-]{7,20}$", description="Phone number.")]
SiteId = Annotated[str, Field(pattern=ID_PATTERN)]


class Input(BaseModel):
    # defer_build: validators built on first use, not at import (an edge
    # daemon that never takes an order need not hold them).
    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, defer_build=True
    )


M = TypeVar("M", bound=BaseModel)


def field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def parse(model: type[M], data: Any) -> M:
    """Validate ``data`` as ``model``; the first problem becomes ``ValidationFailed``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _failed(exc) from None


def parse_json(model: type[M], raw: bytes) -> M:
    """A JSON request body as ``model`` in strict mode: ``"2"`` and ``true`` are no quantity."""
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise _failed(exc) from None


def _failed(exc: ValidationError) -> ValidationFailed:
    err = exc.errors()[0]
    loc = tuple(p for p in err["loc"] if not str(p).startswith("function-"))
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    path = field_path(loc)
    # Cross-field validators name their field as "field: message".
    named = re.match(r"^(\w+): (.*)$", msg)
    if named and not loc:
        path, msg = named.group(1), named.group(2)
    return ValidationFailed(path, msg)


class ProductInput(Input):
    name: str = Field(min_length=1, max_length=200, description="Display name.")
    slug: str = Field(min_length=1, max_length=100, pattern=SLUG, description="Unique URL key.")
    category: Category = Field(description="Catalogue category.")
    description: str = Field("", max_length=20_000, description="Long description.")
    short_description: str = Field("", max_length=300, description="Teaser, <= 300 chars.")
    price: Money = Field(description="Regular price (USD, 2 decimals).")
    member_price: Money | None = Field(
        None, description="Price for active members; strictly below the regular price."
    )
    low_stock_threshold: int = Field(5, ge=0, le=1_000_000, description="Low-stock level.")
    image_url: Url | None = Field(None, description="Main image URL.")
    gallery: list[Url] = Field(default_factory=list, max_length=20, description="Gallery URLs.")
    active: bool = Field(True, description="Shown in the catalogue.")
    featured: bool = Field(False, description="Shown among featured products.")
    accounting_item_id: str | None = Field(
        None, max_length=100, description="Item id in the accounting system."
    )

    @model_validator(mode="after")
    def _member_below_regular(self) -> ProductInput:
        if self.member_price is not None and self.member_price >= self.price:
            raise ValueError("member_price: must be strictly below price")
        return self


class ProductPatch(Input):
    """Any subset of product fields; the merged result is re-validated as a whole."""

    name: str | None = Field(None, description="Display name.")
    category: Category | None = Field(None, description="Catalogue category.")
    description: str | None = Field(None, description="Long description.")
    short_description: str | None = Field(None, description="Teaser, <= 300 chars.")
    price: Money | None = Field(None, description="Regular price.")
    member_price: Money | None = Field(None, description="Member price (null removes it).")
    low_stock_threshold: int | None = Field(None, description="Low-stock level.")
    image_url: Url | None = Field(None, description="Main image URL.")
    gallery: list[Url] | None = Field(None, description="Gallery URLs.")
    active: bool | None = Field(None, description="Shown in the catalogue.")
    featured: bool | None = Field(None, description="Featured flag.")
    accounting_item_id: str | None = Field(None, description="Accounting item id.")


class RestockInput(Input):
    quantity: int = Field(ge=1, le=1_000_000, description="Units received.")
    note: str | None = Field(None, max_length=255, description="Delivery note.")
    site: SiteId | None = Field(
        None, description="Site whose stock this is (a chain with sites: required)."
    )


class AdjustInput(Input):
    delta: int = Field(ge=-1_000_000, le=1_000_000, description="Signed correction, not 0.")
    reason: str = Field(min_length=1, max_length=255, description="Why (count, breakage).")
    site: SiteId | None = Field(
        None, description="Site whose stock this is (a chain with sites: required)."
    )

    @model_validator(mode="after")
    def _not_zero(self) -> AdjustInput:
        if self.delta == 0:
            raise ValueError("delta: must not be 0")
        return self


class CatalogueQuery(Input):
    category: Category | None = Field(None, description="Only this category.")
    featured: bool | None = Field(None, description="Only featured (true) or not (false).")
    search: str | None = Field(None, max_length=100, description="Text in name/descriptions.")
    featured_first: bool = Field(False, description="Featured products before the others.")
    page: int = Field(1, ge=1, le=100_000, description="1-based page.")
    page_size: int = Field(20, ge=1, le=100, description="Items per page.")


class MemberInput(Input):
    name: Name
    email: str = Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", description="Email.")
    phone: Phone
    date_of_birth: date = Field(description="Members are adults (18+).")
    tier: Tier = Field(Tier.BASIC, description="Membership tier.")
    active: bool = Field(True, description="Membership active (member prices apply).")


class ProfileInput(Input):
    """What a member may correct about themselves (the website's account page)."""

    name: Name
    phone: Phone


class OrderItemInput(Input):
    product: str = Field(min_length=1, max_length=100, description="Product slug.")
    quantity: int = Field(ge=1, le=1000, description="Units, at least 1.")
    note: str | None = Field(None, max_length=255, description="Note for this line.")


class OrderInput(Input):
    items: list[OrderItemInput] = Field(min_length=1, max_length=50, description="Lines.")
    pickup_date: date | None = Field(None, description="Day the member picks up.")
    booking_ref: str | None = Field(None, max_length=100, description="Linked spa booking.")
    customer_notes: str = Field("", max_length=2000, description="Notes from the member.")
    site: SiteId | None = Field(
        None,
        description="Pickup site id (sync.sites.list_sites); required where the chain has"
        " sites. Its tax rate, stock and time zone apply. An edge takes its own site.",
    )

    @model_validator(mode="after")
    def _distinct_products(self) -> OrderInput:
        seen: set[str] = set()
        for item in self.items:
            if item.product in seen:
                raise ValueError(f"items: product {item.product!r} is listed twice")
            seen.add(item.product)
        return self


class OrderStatusInput(Input):
    status: Literal[OrderStatus.PROCESSING, OrderStatus.READY, OrderStatus.COMPLETED] = Field(
        description="Next status."
    )
    staff_notes: str | None = Field(None, max_length=2000, description="Staff notes.")


class PaymentInput(Input):
    payment_ref: str = Field(min_length=1, max_length=200, description="Payment reference.")


class ConciergeInput(Input):
    request_type: RequestType = Field(description="What kind of item.")
    title: str = Field(min_length=1, max_length=200, description="Short title.")
    description: str = Field(min_length=1, max_length=5000, description="What is wanted.")
    product_link: Url | None = Field(None, description="Optional link to the product.")
    budget_min: Money = Field(description="Lowest acceptable cost.")
    budget_max: Money = Field(description="Highest acceptable cost.")
    preferred_pickup_date: date = Field(description="At least 3 days after submission.")
    booking_ref: str | None = Field(None, max_length=100, description="Linked spa booking.")
    site: SiteId | None = Field(
        None, description="Pickup site id; required where the chain has sites."
    )

    @model_validator(mode="after")
    def _budget_order(self) -> ConciergeInput:
        if self.budget_min > self.budget_max:
            raise ValueError("budget_min: must not exceed budget_max")
        return self


class DeclineInput(Input):
    reason: str = Field(min_length=1, max_length=1000, description="Told to the member.")


class CostInput(Input):
    actual_cost: Money = Field(description="What the item actually cost.")


class RequestStatusInput(Input):
    status: Literal[RequestStatus.PROCESSING, RequestStatus.READY, RequestStatus.COMPLETED] = Field(
        description="Next status."
    )
    staff_notes: str | None = Field(None, max_length=2000, description="Staff notes.")
