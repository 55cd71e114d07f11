"""Exception tree of the shop domain.

Each class carries the HTTP status both APIs answer it with
(``http_status``): ``ValidationFailed`` → 422 naming the field,
``NotFound`` → 404, ``Forbidden`` → 403, ``Conflict`` (and its children
``InvalidTransition``, ``OutOfStock``, ``NumbersExhausted``) → 409,
``StorageFailure`` → 503.
"""

from __future__ import annotations


class ShopError(Exception):
    """Base of every shop/concierge refusal."""

    code = "shop_error"
    http_status = 400
    field: str | None = None


class ValidationFailed(ShopError):
    """Input broke a rule; ``field`` names the offending field (dotted path)."""

    code = "validation_failed"
    http_status = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(ShopError):
    code = "not_found"
    http_status = 404

    def __init__(self, what: str, ident: str) -> None:
        super().__init__(f"unknown {what}: {ident!r}")
        self.what = what
        self.ident = ident


class Forbidden(ShopError):
    """The caller may not do this (e.g. a basic member asking the concierge)."""

    code = "forbidden"
    http_status = 403

    def __init__(self, message: str) -> None:
        super().__init__(message)


class Conflict(ShopError):
    """The request is valid but the current state refuses it."""

    code = "conflict"
    http_status = 409

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidTransition(Conflict):
    code = "invalid_transition"

    def __init__(self, what: str, current: str, wanted: str) -> None:
        super().__init__(f"{what} is {current}; cannot become {wanted}", field="status")
        self.current = current
        self.wanted = wanted


class OutOfStock(Conflict):
    code = "out_of_stock"

    def __init__(self, product: str, available: int, wanted: int) -> None:
        super().__init__(
            f"product {product!r}: {wanted} wanted, {available} in stock", field="items"
        )
        self.product = product
        self.available = available
        self.wanted = wanted


class NumbersExhausted(Conflict):
    """This node holds no unused number block (offline and its leases ran out)."""

    code = "numbers_exhausted"


class StorageFailure(ShopError):
    """The database failed (not a rule): disk, connection, driver error."""

    code = "storage_failure"
    http_status = 503
