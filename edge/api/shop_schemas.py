"""Response schemas of the staff shop endpoints, derived from the shop's record
types, and the pass that tightens every schema of the LAN API's document.

Request schemas come from the very models the handlers parse with (declared
on each route of ``edge.api.routes``); :func:`tighten` then narrows them where
pydantic's JSON schema is looser than its validation (money, blank strings),
so a fuzzer generating "valid" data produces data the server accepts.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from edge.shop.records import ConciergeRequest, Order, Product
from edge.shop.statuses import OrderStatus, RequestStatus, Tier

REF = "#/components/schemas/{model}"
MONEY_TEXT = {"type": "string", "pattern": r"^[0-9]{1,10}(\.[0-9]{1,2})?$"}
ID = {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_-]{0,62}$"}
# Unanchored: the string holds something other than white space.
NOT_BLANK = r"\S"
TIERS = [t.value for t in Tier]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def tighten(node: Any) -> None:
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
            tighten(value)
    elif isinstance(node, list):
        for value in node:
            tighten(value)


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
    """Component schemas of what the shop endpoints return (``Route.response`` names)."""
    out: dict[str, Any] = {}
    for record in (Product, Order, ConciergeRequest):
        schema = TypeAdapter(record).json_schema(mode="serialization", ref_template=REF)
        out.update(schema.pop("$defs", {}))
        out[record.__name__] = schema
    out["Order"]["properties"]["status"]["enum"] = [s.value for s in OrderStatus]
    out["ConciergeRequest"]["properties"]["status"]["enum"] = [s.value for s in RequestStatus]
    member_fields = {
        "member_name": {"type": "string", "description": "The member's name."},
        "member_tier": {"type": "string", "enum": TIERS},
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
            "tier": {"type": "string", "enum": TIERS},
            "active": {"type": "boolean", "description": "Member prices apply."},
        },
    }
    statuses = {"type": "array", "items": {"type": "string"}}
    part = {
        "type": "object",
        "required": ["statuses", "next", "cancellable", "open", "closed"],
        "properties": {
            "statuses": statuses,
            "next": {"type": "object", "additionalProperties": {"type": "string"}},
            "cancellable": statuses,
            "open": statuses,
            "closed": statuses,
        },
    }
    out["ShopRules"] = {
        "type": "object",
        "required": ["order", "request", "tiers", "concierge_tiers"],
        "properties": {
            "order": part,
            "request": part,
            "tiers": statuses,
            "concierge_tiers": statuses,
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
    return out
