"""Request bodies and query strings of the staff shop endpoints.

Bodies reuse the shop's own input models (one statement of each rule) and
are parsed in pydantic's strict JSON mode: ``"2"`` is not a quantity and
``true`` is not a price.  Unknown fields, in a body or a query string, are
422s naming the field.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edge.shop.inputs import ConciergeInput, OrderInput
from edge.shop.statuses import OrderStatus, RequestStatus

MEMBER_ID = Field(
    min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="The member's id."
)


class CounterOrderBody(OrderInput):
    """A pickup order placed at the front desk for a member."""

    member_id: str = MEMBER_ID

    def order(self) -> dict[str, Any]:
        return self.model_dump(exclude={"member_id"})


class CounterRequestBody(ConciergeInput):
    """A concierge request taken at the front desk for a Premium or Unlimited member."""

    member_id: str = MEMBER_ID

    def request(self) -> dict[str, Any]:
        return self.model_dump(exclude={"member_id"})


class ApproveBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, defer_build=True
    )  # built on first use (edge.api.models.Body says why)

    staff_notes: str | None = Field(None, max_length=2000, description="Staff notes.")


class Query(BaseModel):
    # Query strings are text: lax parsing turns "2" into 2, but unknown keys are refused.
    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, defer_build=True
    )


class OrdersQuery(Query):
    status: OrderStatus | None = Field(None, description="Only orders in this status.")
    page: int = Field(1, ge=1, le=100_000, description="1-based page.")
    page_size: int = Field(50, ge=1, le=100, description="Orders per page.")


class RequestsQuery(Query):
    status: RequestStatus | None = Field(None, description="Only requests in this status.")
    page: int = Field(1, ge=1, le=100_000, description="1-based page.")
    page_size: int = Field(50, ge=1, le=100, description="Requests per page.")


class MembersQuery(Query):
    search: str | None = Field(None, max_length=100, description="Text in name or email.")
    active: bool | None = Field(None, description="Only active (true) or lapsed (false).")
    limit: int = Field(50, ge=1, le=200, description="At most this many members.")
