"""Statuses and tiers are declared once (edge.shop.statuses); everything that
restates them is held to that declaration here: the stored CHECK constraints
(migrations already in the field), sync's merge ranks and the LAN API's
document, from which the web pages read them.  Likewise the HTTP status of
each shop refusal is declared once, on the exception (``http_status``)."""

from __future__ import annotations

import re
from enum import StrEnum

import pytest

from edge.api.routes import openapi_document
from edge.api.routes_shop import api_error
from edge.shop.errors import (
    Conflict,
    Forbidden,
    InvalidTransition,
    NotFound,
    NumbersExhausted,
    OutOfStock,
    ShopError,
    StorageFailure,
    ValidationFailed,
)
from edge.shop.schema import STEPS_TEMPLATE
from edge.shop.statuses import OrderStatus, RequestStatus, Tier
from sync.merge import ORDER_RANK, REQUEST_RANK

DDL = "\n".join(STEPS_TEMPLATE)


def checked_values(table: str, column: str) -> set[str]:
    body = DDL[DDL.index(f"CREATE TABLE {table} (") :]
    body = body[: body.index(");")]
    found = re.search(rf"{column} TEXT NOT NULL\s+CHECK \({column} IN \(([^)]*)\)\)", body)
    assert found, f"no CHECK on {table}.{column}"
    return set(re.findall(r"'([^']*)'", found.group(1)))


@pytest.mark.parametrize(
    ("table", "column", "enum"),
    [("orders", "status", OrderStatus), ("concierge_requests", "status", RequestStatus),
     ("members", "tier", Tier)],
)  # fmt: skip
def test_stored_constraints_allow_exactly_the_declared_values(
    table: str, column: str, enum: type[StrEnum]
) -> None:
    assert checked_values(table, column) == {v.value for v in enum}


def test_sync_ranks_every_status() -> None:
    assert set(ORDER_RANK) == set(OrderStatus)
    assert set(REQUEST_RANK) == set(RequestStatus)


def test_the_api_document_carries_the_declared_values() -> None:
    schemas = openapi_document("site-x")["components"]["schemas"]
    assert schemas["Order"]["properties"]["status"]["enum"] == list(OrderStatus)
    assert schemas["ConciergeRequest"]["properties"]["status"]["enum"] == list(RequestStatus)
    assert schemas["MemberSummary"]["properties"]["tier"]["enum"] == list(Tier)


@pytest.mark.parametrize(
    "exc",
    [ValidationFailed("items[0].quantity", "must be at least 1"), NotFound("order", "x"),
     Forbidden("members only"), Conflict("no"), InvalidTransition("order PO-1", "ready", "pending"),
     OutOfStock("serum", 1, 2), NumbersExhausted("none left"), StorageFailure("disk")],
    ids=lambda exc: type(exc).__name__,
)  # fmt: skip
def test_both_apis_answer_a_shop_refusal_with_its_declared_status(exc: ShopError) -> None:
    assert api_error(exc).status == exc.http_status  # the edge; the cloud sends http_status
