"""Order and concierge-request statuses and membership tiers: declared once.

The shop's rules, the LAN and cloud APIs (validation and the OpenAPI
document), sync's merge ranks and the web pages (through the OpenAPI
document) take them from here.  They are ``StrEnum``s: a member equals its
text, so stored rows, JSON and SQL parameters carry the plain value.  The
SQL ``CHECK`` constraints in ``edge.shop.schema`` are migrations already
applied in the field; ``tests/test_shop_statuses.py`` holds them to these.
"""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    READY = "ready"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class RequestStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    PROCESSING = "processing"
    READY = "ready"
    COMPLETED = "completed"
    DECLINED = "declined"
    CANCELLED = "cancelled"


class Tier(StrEnum):
    BASIC = "basic"
    PREMIUM = "premium"
    UNLIMITED = "unlimited"


# Staff move an order or a request forward one step: the step -> the status it needs.
ORDER_PREVIOUS = {
    OrderStatus.PROCESSING: OrderStatus.PENDING,
    OrderStatus.READY: OrderStatus.PROCESSING,
    OrderStatus.COMPLETED: OrderStatus.READY,
}
REQUEST_PREVIOUS = {
    RequestStatus.PROCESSING: RequestStatus.APPROVED,
    RequestStatus.READY: RequestStatus.PROCESSING,
    RequestStatus.COMPLETED: RequestStatus.READY,
}
ORDER_CANCELLABLE = (OrderStatus.PENDING, OrderStatus.PROCESSING)
ORDER_TERMINAL = (OrderStatus.COMPLETED, OrderStatus.CANCELLED)
REQUEST_CANCELLABLE = (RequestStatus.PENDING, RequestStatus.APPROVED, RequestStatus.PROCESSING)
REQUEST_TERMINAL = (RequestStatus.COMPLETED, RequestStatus.DECLINED, RequestStatus.CANCELLED)
CONCIERGE_TIERS = (Tier.PREMIUM, Tier.UNLIMITED)


def rules() -> dict[str, object]:
    """The statuses, their steps and the tiers as JSON, for the web pages."""

    def part(
        statuses: type[StrEnum],
        previous: dict[OrderStatus, OrderStatus] | dict[RequestStatus, RequestStatus],
        cancellable: tuple[StrEnum, ...],
        terminal: tuple[StrEnum, ...],
    ) -> dict[str, object]:
        return {
            "statuses": [s.value for s in statuses],
            "next": {before.value: step.value for step, before in previous.items()},
            "cancellable": [s.value for s in cancellable],
            "open": [s.value for s in statuses if s not in terminal],
            "closed": [s.value for s in terminal],
        }

    return {
        "order": part(OrderStatus, ORDER_PREVIOUS, ORDER_CANCELLABLE, ORDER_TERMINAL),
        "request": part(RequestStatus, REQUEST_PREVIOUS, REQUEST_CANCELLABLE, REQUEST_TERMINAL),
        "tiers": [t.value for t in Tier],
        "concierge_tiers": [t.value for t in CONCIERGE_TIERS],
    }


def sql_list(values: tuple[StrEnum, ...]) -> str:
    """``'a', 'b'`` for an SQL ``IN (...)`` of fixed statuses."""
    return ", ".join(f"'{v.value}'" for v in values)
