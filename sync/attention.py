"""Items staff must look at: oversells, status races, changes that could not apply.

Written in the same transaction as the change that caused them, so an item
exists exactly when its cause does.  In the cloud an item is of a site (the
site of the node whose change raised it, else of the order it names): that
site's staff see and resolve it; an item of no site is the chain's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edge.shop.db import Database, Tx
from edge.shop.errors import NotFound

_COLUMNS = (
    "id, kind, entity, entity_id, origin, detail, data, created_at, resolved_at, resolved_by, site"
)


@dataclass(frozen=True)
class AttentionItem:
    id: int
    kind: str  # oversell, cancelled_vs_completed, rejected_change, ...
    entity: str
    entity_id: str
    origin: str  # node whose change revealed it
    detail: str
    data: dict[str, Any]
    created_at: str
    resolved_at: str | None
    resolved_by: str | None
    site: str | None = None  # cloud: the site whose staff see it; None: the chain's

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def utc_stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def raise_attention(
    tx: Tx, kind: str, entity: str, entity_id: str, origin: str, detail: str,
    data: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    site = site_of_item(tx, entity, entity_id, origin, data or {})
    tx.execute(
        "INSERT INTO sync_attention (kind, entity, entity_id, origin, detail, data, created_at,"
        " site) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (kind, entity, entity_id, origin, detail, json.dumps(data or {}, sort_keys=True),
         utc_stamp(), site),
    )  # fmt: skip


def site_of_item(
    tx: Tx, entity: str, entity_id: str, origin: str, data: dict[str, Any]
) -> str | None:
    """The site of the node that raised it and of the order or request it is about;
    the chain's (None) when they differ (a node reaching into another site)."""
    node_site = tx.scalar("SELECT site_id FROM site_nodes WHERE node_id = ?", (origin,))
    record_site = None
    if entity == "concierge_request":
        record_site = tx.scalar("SELECT site FROM concierge_requests WHERE id = ?", (entity_id,))
    elif entity == "order" or data.get("order_id"):
        order = entity_id if entity == "order" else str(data["order_id"])
        record_site = tx.scalar("SELECT site FROM orders WHERE id = ?", (order,))
    if node_site is not None and record_site is not None and node_site != record_site:
        return None
    site = node_site if node_site is not None else record_site
    return None if site is None else str(site)


def has_attention(tx: Tx, kind: str, entity_id: str, *, open_only: bool = False) -> bool:
    unresolved = " AND resolved_at IS NULL" if open_only else ""
    sql = f"SELECT id FROM sync_attention WHERE kind = ? AND entity_id = ?{unresolved}"
    return tx.one(sql, (kind, entity_id)) is not None


def _item(row: dict[str, Any]) -> AttentionItem:
    return AttentionItem(**{**row, "id": int(row["id"]), "data": json.loads(row["data"])})


def list_attention(
    db: Database, *, include_resolved: bool = False, limit: int = 200, site: str | None = None
) -> list[AttentionItem]:
    """``site``: only that site's items (a site's staff); None: all of them."""
    where = [] if include_resolved else ["resolved_at IS NULL"]
    params: list[Any] = []
    if site is not None:
        where.append("site = ?")
        params.append(site)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    with db.read() as tx:
        rows = tx.all(f"SELECT {_COLUMNS} FROM sync_attention{clause} ORDER BY id LIMIT ?",
                      (*params, limit))  # fmt: skip
    return [_item(r) for r in rows]


def count_open(tx: Tx) -> int:
    return int(tx.scalar("SELECT COUNT(*) AS n FROM sync_attention WHERE resolved_at IS NULL"))


def resolve_attention(
    db: Database, item_id: int, actor: str, *, site: str | None = None
) -> AttentionItem:
    """``site``: a site's staff, who resolve only that site's items (another's is absent)."""
    scope, params = ("", ()) if site is None else (" AND site = ?", (site,))
    with db.write() as tx:
        row = tx.one(f"SELECT {_COLUMNS} FROM sync_attention WHERE id = ?{scope}",
                     (item_id, *params))  # fmt: skip
        if row is None:
            raise NotFound("attention item", str(item_id))
        tx.execute(
            "UPDATE sync_attention SET resolved_at = ?, resolved_by = ?"
            " WHERE id = ? AND resolved_at IS NULL",
            (utc_stamp(), actor, item_id),
        )
        row = tx.one(f"SELECT {_COLUMNS} FROM sync_attention WHERE id = ?", (item_id,))
    assert row is not None
    return _item(row)
