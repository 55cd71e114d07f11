"""Oversells where they are fixed: at the spa, open until staff resolve them.

An edge raises an ``oversell`` item naming the product (name and slug) and the
shortfall when it holds a movement it cannot absorb, and when the cloud's
``oversell hold`` adjustment arrives.  Neither resolves itself: staff resolve
it in one step (``resolve_oversell``): restock what arrived, cancel one of the
orders, give a substitute (its stock moves down, the short product's
up), or just acknowledge — the action and the
resolution together, refused if the item is already resolved.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from edge.shop import Shop
from edge.shop.db import Tx
from edge.shop.errors import Conflict, NotFound, ValidationFailed
from edge.shop.inputs import Input
from sync.attention import AttentionItem, list_attention, raise_attention, resolve_attention

KINDS = ("oversell", "oversell_held")
HOLD_NOTE = "oversell hold:"  # the cloud's compensating adjustment (sync/apply.py)


class ResolveInput(Input):
    action: Literal["restock", "cancel_order", "substitute", "acknowledge"] = Field(
        description="What staff did about the shortfall."
    )
    quantity: int | None = Field(
        None, ge=1, le=100_000,
        description="restock: units arrived; substitute: units given (default: the shortfall).",
    )  # fmt: skip
    order_id: str | None = Field(None, max_length=64, description="cancel_order: which order.")
    substitute_slug: str | None = Field(
        None, min_length=1, max_length=64, description="substitute: the product given instead."
    )
    note: str | None = Field(None, max_length=500, description="substitute: a note for the ledger.")


def describe(tx: Tx, product_id: str, short: int, origin: str, order_id: Any) -> str:
    row = tx.one("SELECT name, slug, stock FROM products WHERE id = ?", (product_id,))
    name = f"{row['name']} ({row['slug']})" if row else product_id
    return (f"oversell: {name} is short by {short} unit(s) (sold on {origin} while apart"
            f"{', order ' + str(order_id) if order_id else ''}); restock, cancel an order or"
            " give a substitute, then resolve")  # fmt: skip


def raise_oversell(
    tx: Tx, kind: str, product_id: str, short: int, origin: str, order_id: Any
) -> None:
    data = {"product_id": product_id, "short": short, "order_id": order_id}
    raise_attention(tx, kind, "product", product_id, origin,
                    describe(tx, product_id, short, origin, order_id), data)  # fmt: skip


def resolve_oversell(shop: Shop, item_id: int, r: ResolveInput, actor: str) -> AttentionItem:
    """Blocking (shop thread): the staff action and the resolution, in one request."""
    item = next((i for i in list_attention(shop.db, limit=10_000) if i.id == item_id), None)
    if item is None:
        raise NotFound("attention item", str(item_id))
    if item.kind not in KINDS:
        raise ValidationFailed("id", f"item {item_id} is a {item.kind}, not an oversell")
    with shop.db.read() as tx:
        slug = tx.scalar("SELECT slug FROM products WHERE id = ?", (item.data["product_id"],))
    if r.action == "restock":
        if r.quantity is None:
            raise ValidationFailed("quantity", "required to restock")
        shop.restock(str(slug), {"quantity": r.quantity, "note": f"oversell #{item_id}"},
                     actor=actor)  # fmt: skip
    elif r.action == "cancel_order":
        if not r.order_id:
            raise ValidationFailed("order_id", "required to cancel an order")
        shop.cancel_order(r.order_id, actor=actor)
    elif r.action == "substitute":
        if not r.substitute_slug:
            raise ValidationFailed("substitute_slug", "name the product given instead")
        units = r.quantity or int(item.data.get("short") or 1)
        why = f"oversell #{item_id}: {units} {r.substitute_slug} given for {slug}"
        shop.substitute(str(slug), r.substitute_slug, units, actor=actor,
                        note=f"{why}; {r.note}" if r.note else why)  # fmt: skip
    resolved = resolve_attention(shop.db, item_id, f"{actor}:{r.action}")
    if resolved.resolved_by != f"{actor}:{r.action}":
        raise Conflict(f"item {item_id} was resolved meanwhile", field="id")
    return resolved
