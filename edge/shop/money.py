"""Exact money: Decimal in the API, integer cents in the database, half-up to cents."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def round_cents(amount: Decimal) -> Decimal:
    """Round half-up to cents (``Decimal`` only: a float here is a bug)."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"money must be Decimal, not {type(amount).__name__}")
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def to_cents(amount: Decimal) -> int:
    return int(round_cents(amount) * 100)


def from_cents(cents: int) -> Decimal:
    return (Decimal(int(cents)) / 100).quantize(CENT)


def percent_one_decimal(part: Decimal, whole: Decimal) -> Decimal:
    """``part / whole * 100`` rounded half-up to one decimal; 0 when ``whole`` is 0."""
    if whole == 0:
        return Decimal("0.0")
    return (part / whole * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def order_totals(
    lines: Iterable[tuple[Decimal, int]], tax_rate: Decimal
) -> tuple[Decimal, Decimal, Decimal]:
    """(subtotal, tax, total) of (unit price, quantity) lines: exact sums, tax half-up."""
    subtotal = sum((unit * qty for unit, qty in lines), Decimal("0.00"))
    tax = round_cents(subtotal * tax_rate)
    return subtotal, tax, subtotal + tax
