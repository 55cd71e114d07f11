"""OpenAPI paths and schemas of the staff shop endpoints (merged by ``openapi.py``).

Response schemas are derived from the shop's record types, request schemas
from the very models the handlers parse with, then tightened where pydantic's
JSON schema is looser than its validation (money, blank strings), so a
fuzzer generating "valid" data produces data the server accepts.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter

from edge.api.shop_models import (
    ORDER_STATUSES,
    REQUEST_STATUSES,
    ApproveBody,
    CounterOrderBody,
    CounterRequestBody,
)
from edge.shop.inputs import (
    CATEGORIES,
    CostInput,
    DeclineInput,
    OrderStatusInput,
    PaymentInput,
    RequestStatusInput,
)
from edge.shop.records import ConciergeRequest, Order, Product

REF = "#/components/schemas/{model}"
BODIES: tuple[type[BaseModel], ...] = (
    CounterOrderBody,
    OrderStatusInput,
    PaymentInput,
    CounterRequestBody,
    ApproveBody,
    DeclineInput,
    CostInput,
    RequestStatusInput,
)
MONEY_TEXT = {"type": "string", "pattern": r"^[0-9]{1,10}(\.[0-9]{1,2})?$"}
ID = {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_-]{0,62}$"}
# Unanchored: the string holds something other than white space.
NOT_BLANK = r"\S"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _tighten(node: Any) -> None:
    """Money: 2 decimals, as text or number; required strings: not blank."""
    if isinstance(node, dict):
        alts = node.get("anyOf")
        if isinstance(alts, list) and {a.get("type") for a in alts} == {"number", "string"}:
            node["anyOf"] = [
                {"type": "number", "minimum": 0, "maximum": 9_999_999_999.99, "multipleOf": 0.01},
                MONEY_TEXT,
            ]
        if node.get("type") == "string" and node.get("minLength", 0) >= 1 and "pattern" not in node:
            node["pattern"] = NOT_BLANK
        for value in node.values():
            _tighten(value)
    elif isinstance(node, list):
        for value in node:
            _tighten(value)


def _page(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "total", "page", "page_size"],
        "properties": {
            "items": {"type": "array", "items": _ref(item)},
            "total": {"type": "integer", "minimum": 0},
            "page": {"type": "integer", "minimum": 1},
            "page_size": {"type": "integer", "minimum": 1},
        },
    }


def _list(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": _ref(item)}},
    }


def shop_schemas() -> dict[str, Any]:
    """Component schemas: request bodies and the shapes the endpoints return."""
    out: dict[str, Any] = {}
    for model in BODIES:
        schema = model.model_json_schema(ref_template=REF)
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    for record in (Product, Order, ConciergeRequest):
        schema = TypeAdapter(record).json_schema(mode="serialization", ref_template=REF)
        out.update(schema.pop("$defs", {}))
        out[record.__name__] = schema
    out["Order"]["properties"]["status"]["enum"] = list(ORDER_STATUSES)
    out["ConciergeRequest"]["properties"]["status"]["enum"] = list(REQUEST_STATUSES)
    member_fields = {
        "member_name": {"type": "string", "description": "The member's name."},
        "member_tier": {"type": "string", "enum": ["basic", "premium", "unlimited"]},
    }
    for name, base in (("QueuedOrder", "Order"), ("QueuedRequest", "ConciergeRequest")):
        out[name] = {
            "allOf": [
                _ref(base),
                {
                    "type": "object",
                    "required": list(member_fields),
                    "properties": member_fields,
                },
            ]
        }
    out["MemberSummary"] = {
        "type": "object",
        "required": ["id", "name", "tier", "active"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "tier": {"type": "string", "enum": ["basic", "premium", "unlimited"]},
            "active": {"type": "boolean", "description": "Member prices apply."},
        },
    }
    out["ProductPage"] = _page("Product")
    out["ProductList"] = _list("Product")
    out["MemberList"] = _list("MemberSummary")
    out["OrderPage"] = _page("QueuedOrder")
    out["RequestPage"] = _page("QueuedRequest")
    counts = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}
    out["ShopOverview"] = {
        "type": "object",
        "required": ["tax_rate", "orders", "requests", "low_stock", "out_of_stock"],
        "properties": {
            "tax_rate": {"type": "string", "description": "Sales tax rate, e.g. 0.08."},
            "orders": {**counts, "description": "Orders per status."},
            "requests": {**counts, "description": "Concierge requests per status."},
            "low_stock": {"type": "integer", "minimum": 0},
            "out_of_stock": {"type": "integer", "minimum": 0},
        },
    }
    _tighten(out)
    return out


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}  # fmt: skip


PAGE = [
    _query("page", {"type": "integer", "minimum": 1, "maximum": 100_000}, "1-based page."),
    _query("page_size", {"type": "integer", "minimum": 1, "maximum": 100}, "Items per page."),
]
ORDER_ID = {"name": "order_id", "in": "path", "required": True, "schema": ID}
REQUEST_ID = {"name": "request_id", "in": "path", "required": True, "schema": ID}


def _op(
    summary: str,
    result: str,
    *,
    body: type[BaseModel] | None = None,
    params: list[dict[str, Any]] | None = None,
    ok: int = 200,
    errors: tuple[int, ...] = (),
) -> dict[str, Any]:
    codes = {401, 403, 503, *errors}
    if body is not None:
        codes |= {400, 422}
    if params and any(p["in"] == "query" for p in params):
        codes.add(422)
    if params and any(p["in"] == "path" for p in params):
        codes.add(404)
    responses: dict[str, Any] = {
        str(ok): {
            "description": "Success",
            "content": {"application/json": {"schema": _ref(result)}},
        }
    }
    for code in sorted(codes):
        responses[str(code)] = {"$ref": f"#/components/responses/E{code}"}
    op: dict[str, Any] = {
        "summary": summary,
        "description": "Requires: staff.",
        "security": [{"bearer": []}, {"cookie": []}],
        "tags": ["shop"],
        "responses": responses,
    }
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body.__name__)}},
        }
    return op


def _request_op(summary: str, body: type[BaseModel] | None = None) -> dict[str, Any]:
    return {"post": _op(summary, "QueuedRequest", body=body, params=[REQUEST_ID], errors=(409,))}


BASE = "/api/v1/shop"
SHOP_PATHS: dict[str, dict[str, Any]] = {
    f"{BASE}/overview": {"get": _op("Queue counts, stock alerts and the tax rate", "ShopOverview")},
    f"{BASE}/products": {
        "get": _op(
            "Active products with in-stock and low-stock flags",
            "ProductPage",
            params=[
                _query("category", {"type": "string", "enum": list(CATEGORIES)}, "Category."),
                _query("featured", {"type": "boolean"}, "Only featured (true) or not (false)."),
                _query("search", {"type": "string", "maxLength": 100}, "Text in name/texts."),
                *PAGE,
            ],
        )
    },
    f"{BASE}/products/low-stock": {
        "get": _op("Products at or below their low-stock level, emptiest first", "ProductList")
    },
    f"{BASE}/members": {
        "get": _op(
            "Shop members (name, tier, active) for the member picker",
            "MemberList",
            params=[
                _query("search", {"type": "string", "maxLength": 100}, "Name or email."),
                _query("active", {"type": "boolean"}, "Only active or lapsed members."),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 200}, "Max."),
            ],
        )
    },
    f"{BASE}/orders": {
        "get": _op(
            "The pickup queue, newest first",
            "OrderPage",
            params=[
                _query("status", {"type": "string", "enum": list(ORDER_STATUSES)}, "Status."),
                *PAGE,
            ],
        ),
        "post": _op(
            "Create a pickup order at the counter (member prices while the membership is active)",
            "QueuedOrder",
            body=CounterOrderBody,
            ok=201,
            errors=(404, 409),
        ),
    },
    f"{BASE}/orders/{{order_id}}": {"get": _op("One order", "QueuedOrder", params=[ORDER_ID])},
    f"{BASE}/orders/{{order_id}}/status": {
        "post": _op(
            "Move an order on: processing, ready, completed",
            "QueuedOrder",
            body=OrderStatusInput,
            params=[ORDER_ID],
            errors=(409,),
        )
    },
    f"{BASE}/orders/{{order_id}}/cancel": {
        "post": _op(
            "Cancel a pending or processing order; its stock comes back",
            "QueuedOrder",
            params=[ORDER_ID],
            errors=(409,),
        )
    },
    f"{BASE}/orders/{{order_id}}/payment": {
        "post": _op(
            "Record the payment reference",
            "QueuedOrder",
            body=PaymentInput,
            params=[ORDER_ID],
            errors=(409,),
        )
    },
    f"{BASE}/concierge/requests": {
        "get": _op(
            "The concierge queue, newest first",
            "RequestPage",
            params=[
                _query("status", {"type": "string", "enum": list(REQUEST_STATUSES)}, "Status."),
                *PAGE,
            ],
        ),
        "post": _op(
            "Take a concierge request at the counter (Premium and Unlimited members)",
            "QueuedRequest",
            body=CounterRequestBody,
            ok=201,
            errors=(404, 409),
        ),
    },
    f"{BASE}/concierge/requests/{{request_id}}": {
        "get": _op("One concierge request", "QueuedRequest", params=[REQUEST_ID])
    },
    f"{BASE}/concierge/requests/{{request_id}}/approve": _request_op(
        "Approve a pending request", ApproveBody
    ),
    f"{BASE}/concierge/requests/{{request_id}}/decline": _request_op(
        "Decline a pending request, with the reason told to the member", DeclineInput
    ),
    f"{BASE}/concierge/requests/{{request_id}}/cost": _request_op(
        "Set the actual cost (the response shows within_budget)", CostInput
    ),
    f"{BASE}/concierge/requests/{{request_id}}/verify-age": _request_op(
        "Record that staff saw ID (needed before alcohol is handed over)"
    ),
    f"{BASE}/concierge/requests/{{request_id}}/status": _request_op(
        "Move a request on: processing, ready, completed", RequestStatusInput
    ),
    f"{BASE}/concierge/requests/{{request_id}}/cancel": _request_op(
        "Cancel a pending, approved or processing request"
    ),
}
