"""Items staff must look at: oversells, status races, changes that could not apply.

Written in the same transaction as the change that caused them, so an item
exists exactly when its cause does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edge.shop.db import Database, Tx
from edge.shop.errors import NotFound

_COLUMNS = "id, kind, entity, entity_id, origin, detail, data, created_at, resolved_at, resolved_by"


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

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def utc_stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def raise_attention(
    tx: Tx, kind: str, entity: str, entity_id: str, origin: str, detail: str,
    data: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    tx.execute(
        "INSERT INTO sync_attention (kind, entity, entity_id, origin, detail, data, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (kind, entity, entity_id, origin, detail, json.dumps(data or {}, sort_keys=True),
         utc_stamp()),
    )  # fmt: skip


def has_attention(tx: Tx, kind: str, entity_id: str, *, open_only: bool = False) -> bool:
    unresolved = " AND resolved_at IS NULL" if open_only else ""
    sql = f"SELECT id FROM sync_attention WHERE kind = ? AND entity_id = ?{unresolved}"
    return tx.one(sql, (kind, entity_id)) is not None


def _item(row: dict[str, Any]) -> AttentionItem:
    return AttentionItem(**{**row, "id": int(row["id"]), "data": json.loads(row["data"])})


def list_attention(db: Database, *, include_resolved: bool = False, limit: int = 200) -> list[
    AttentionItem
]:  # fmt: skip
    where = "" if include_resolved else " WHERE resolved_at IS NULL"
    with db.read() as tx:
        rows = tx.all(f"SELECT {_COLUMNS} FROM sync_attention{where} ORDER BY id LIMIT ?", (limit,))
    return [_item(r) for r in rows]


def count_open(tx: Tx) -> int:
    return int(tx.scalar("SELECT COUNT(*) AS n FROM sync_attention WHERE resolved_at IS NULL"))


def resolve_attention(db: Database, item_id: int, actor: str) -> AttentionItem:
    with db.write() as tx:
        tx.execute(
            "UPDATE sync_attention SET resolved_at = ?, resolved_by = ?"
            " WHERE id = ? AND resolved_at IS NULL",
            (utc_stamp(), actor, item_id),
        )
        row = tx.one(f"SELECT {_COLUMNS} FROM sync_attention WHERE id = ?", (item_id,))
    if row is None:
        raise NotFound("attention item", str(item_id))
    return _item(row)
