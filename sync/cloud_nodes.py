"""The cloud's record of each node's incarnations: registration, rollback checks, recovery.

The cloud is the record of what a node did: which incarnations it had, which
changes of each it acknowledged and which number blocks it was leased.  A node
that claims an incarnation the cloud knows went further (more outbox seqs,
or a successor incarnation) was rolled back to an older disk: it is told so
and starts a new incarnation.  ``recover`` hands a node its own acknowledged
history that its disk lacks (docs/sync.md "Restores and reinstalls").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from edge.shop.db import Database
from sync.attention import raise_attention, utc_stamp

MAX_KNOWN = 200  # incarnations a node may list in one recover request


@dataclass(frozen=True)
class Hello:
    incarnation: str
    previous: str | None
    first_seq: int
    reason: str
    outbox_head: int


def hello(db: Database, node: str, h: Hello) -> dict[str, Any]:
    """Register ``h.incarnation`` (idempotent); the verdict and this node's leases."""
    verdict = "ok"
    with db.write() as tx:
        known = tx.one(
            "SELECT reason FROM sync_incarnations WHERE node = ? AND incarnation = ?",
            (node, h.incarnation),
        )
        if known is None:
            had_life = tx.one("SELECT 1 AS x FROM sync_changes WHERE origin = ? LIMIT 1", (node,))
            reason = "reinstalled" if h.reason == "new" and had_life else h.reason
            tx.execute(
                "INSERT INTO sync_incarnations (node, incarnation, previous, first_seq, reason,"
                " started_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (node, h.incarnation, h.previous, h.first_seq, reason, utc_stamp()),
            )
            if reason not in ("new", "legacy"):
                raise_attention(
                    tx, "node_restarted", "node", node, node,
                    f"node {node} started a new incarnation ({reason}); its own history is"
                    " re-sent to it from here. Orders it took after its backup that never"
                    " reached the cloud are lost: check with the site.",
                    {"incarnation": h.incarnation, "previous": h.previous, "reason": reason},
                )  # fmt: skip
        else:
            successor = tx.one(
                "SELECT incarnation FROM sync_incarnations WHERE node = ? AND previous = ?",
                (node, h.incarnation),
            )
            # Compaction may have removed the newest rows; it notes how far it went.
            head = int(
                tx.scalar(
                    "SELECT COALESCE(MAX(h), 0) AS h FROM (SELECT MAX(origin_seq) AS h"
                    " FROM sync_changes WHERE origin = ? AND incarnation = ? UNION ALL"
                    " SELECT upto AS h FROM sync_compacted WHERE origin = ? AND incarnation = ?)"
                    " t",
                    (node, h.incarnation, node, h.incarnation),
                )
            )
            if successor is not None or head > h.outbox_head:
                verdict = "rolled_back"
        leases = tx.all(
            "SELECT kind, year, block, incarnation, request_key FROM sync_leases WHERE node = ?"
            " ORDER BY kind, year, block",
            (node,),
        )
    return {"incarnation": h.incarnation, "verdict": verdict,
            "leases": [{**r, "year": int(r["year"]), "block": int(r["block"])}
                       for r in leases]}  # fmt: skip


def recover(
    db: Database, node: str, known: list[tuple[str, int]], after: int, limit: int
) -> dict[str, Any]:
    """``node``'s own applied changes after feed seq ``after`` that its disk does not hold.

    ``known`` lists, per incarnation the disk has, the last outbox seq it
    holds; everything else of this node (older disks, the lost future of a
    restored one) comes back, in feed order, to be applied like a pull.
    """
    held = " OR ".join("(incarnation = ? AND origin_seq <= ?)" for _ in known) or "1 = 0"
    params: list[Any] = [v for pair in known for v in pair]
    with db.read() as tx:
        head = int(tx.scalar("SELECT COALESCE(MAX(seq), 0) AS h FROM sync_changes"))
        rows = tx.all(
            "SELECT seq, origin, incarnation, origin_seq, entity, entity_id, op, payload,"
            " created_at FROM sync_changes WHERE origin = ? AND seq > ? AND seq <= ?"
            f" AND status = 'applied' AND entity <> 'attendance' AND NOT ({held})"
            " ORDER BY seq LIMIT ?",
            (node, after, head, *params, limit),
        )
    full = len(rows) == limit
    cursor = int(rows[-1]["seq"]) if full else max(head, after)
    changes = [{**r, "payload": json.loads(r["payload"])} for r in rows]
    return {"changes": changes, "next_cursor": cursor, "more": full}
