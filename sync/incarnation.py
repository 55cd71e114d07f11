"""Node incarnations: one life of an edge data dir, from its start to the next restore.

A restore or a reinstall rewinds the edge's outbox sequence and its number
blocks, so ``<node>:<outbox seq>`` alone would repeat keys the cloud already
acknowledged (and the cloud would drop the new changes as duplicates).  Every
start of a data dir that is new, restored or rolled back therefore begins a new
*incarnation*: a random id registered with the cloud (``POST sync/hello``) and
part of every idempotency key from its ``first_seq`` on.  Outbox rows from
before ``first_seq`` keep the key of the incarnation that wrote them, so the
cloud still deduplicates them.

A new incarnation after a restore also retires every number block the disk
holds (their unused tail may have been spent after the backup, on receipts the
disk no longer knows) and asks the cloud for this node's own history that the
disk lacks (``POST sync/recover``).  See docs/sync.md "Restores and reinstalls".
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.shop import numbering
from edge.shop.db import Tx
from sync.attention import raise_attention, utc_stamp

CURRENT = "incarnation"
RESTORED_AT = "restored_at"
RECOVERY = "recovery"  # set while the own history is still to be re-pulled
RECOVER_CURSOR = "recover_cursor"
RECOVERED = "recovered_changes"  # re-applied so far, across restarts mid-recovery
SHOP_DB = "shop.db"  # edge.ops.layout.SHOP_DB (sync must not import the ops package)


def mark_restored(data_dir: Path) -> None:
    """Called by ``coresync-edge restore``: the restored disk starts a new incarnation.

    Blocking (a CLI step, never on the event loop).  A shop.db that never
    synced has nothing to mark: its first sync starts the first incarnation.
    """
    path = Path(data_dir) / SHOP_DB
    if not path.is_file():
        return
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        if conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sync_state'"
        ).fetchone():
            conn.execute("DELETE FROM sync_state WHERE key = ?", (CURRENT,))
            conn.execute(
                "INSERT INTO sync_state (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (RESTORED_AT, utc_stamp()),
            )
        conn.execute("COMMIT")
    finally:
        conn.close()


@dataclass(frozen=True)
class Incarnation:
    id: str
    previous: str | None
    first_seq: int
    reason: str  # new | legacy | restored | rolled_back

    def to_json(self) -> dict[str, Any]:
        return {"incarnation": self.id, "previous": self.previous,
                "first_seq": self.first_seq, "reason": self.reason}  # fmt: skip


def _state(tx: Tx, key: str) -> str | None:
    value = tx.scalar("SELECT value FROM sync_state WHERE key = ?", (key,))
    return None if value is None else str(value)


def _set_state(tx: Tx, key: str, value: str) -> None:
    tx.execute(
        "INSERT INTO sync_state (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def _row(r: dict[str, Any]) -> Incarnation:
    return Incarnation(r["incarnation"], r["previous"], int(r["first_seq"]), r["reason"])


def lineage(tx: Tx, node: str) -> list[Incarnation]:
    """This disk's incarnations, oldest first (by the outbox seq each starts at)."""
    rows = tx.all(
        "SELECT incarnation, previous, first_seq, reason FROM sync_incarnations"
        " WHERE node = ? ORDER BY first_seq, started_at",
        (node,),
    )
    return [_row(r) for r in rows]


def current(tx: Tx, node: str) -> Incarnation | None:
    inc = _state(tx, CURRENT)
    if inc is None:
        return None
    return next((i for i in lineage(tx, node) if i.id == inc), None)


def ensure(tx: Tx, node: str) -> Incarnation:
    """The current incarnation; starts one if this disk is new or was restored."""
    now = current(tx, node)
    if now is not None:
        return now
    return start(tx, node, "restored" if _state(tx, RESTORED_AT) else "new")


def start(tx: Tx, node: str, reason: str) -> Incarnation:
    """Begin a new incarnation at the next outbox seq; retire blocks after a rewind."""
    past = lineage(tx, node)
    head = int(tx.scalar("SELECT COALESCE(MAX(seq), 0) AS h FROM outbox"))
    pushed = int(_state(tx, "push_cursor") or 0)
    if not past and pushed > 0:
        # Synced before incarnations existed: its keys were "<node>:<seq>".
        tx.execute(
            "INSERT INTO sync_incarnations (node, incarnation, previous, first_seq, reason,"
            " started_at) VALUES (?, '', NULL, 1, 'legacy', ?)",
            (node, utc_stamp()),
        )
        past = lineage(tx, node)
        reason = "legacy" if reason == "new" else reason
    first_seq = head + 1 if past else 1
    inc = Incarnation(secrets.token_hex(8), past[-1].id if past else None, first_seq, reason)
    tx.execute(
        "INSERT INTO sync_incarnations (node, incarnation, previous, first_seq, reason,"
        " started_at) VALUES (?, ?, ?, ?, ?, ?)",
        (node, inc.id, inc.previous, inc.first_seq, inc.reason, utc_stamp()),
    )
    _set_state(tx, CURRENT, inc.id)
    tx.execute("DELETE FROM sync_state WHERE key = ?", (RESTORED_AT,))
    if reason in ("restored", "rolled_back"):
        # The tail of every block this disk holds may already be on receipts.
        numbering.retire_blocks(tx, node)
        tx.execute("DELETE FROM sync_state WHERE key LIKE 'lease_key:%'")
    if reason != "legacy":
        _set_state(tx, RECOVERY, reason)
        _set_state(tx, RECOVER_CURSOR, "0")
        _set_state(tx, RECOVERED, "0")
    return inc


def key_incarnation(past: list[Incarnation], seq: int) -> str:
    """The incarnation whose key an outbox row ``seq`` travels under."""
    owner = ""
    for inc in past:
        if inc.first_seq <= seq:
            owner = inc.id
    return owner


def known_ranges(tx: Tx, node: str) -> list[dict[str, Any]]:
    """For ``sync/recover``: per incarnation, the last outbox seq this disk holds."""
    past = lineage(tx, node)
    head = int(tx.scalar("SELECT COALESCE(MAX(seq), 0) AS h FROM outbox"))
    ranges = []
    for i, inc in enumerate(past):
        upto = past[i + 1].first_seq - 1 if i + 1 < len(past) else max(head, inc.first_seq)
        ranges.append({"incarnation": inc.id, "upto": upto})
    return ranges


def hello_body(tx: Tx, node: str) -> dict[str, Any]:
    """What the edge tells the cloud at start: who it is and how far its disk reaches."""
    inc = ensure(tx, node)
    held = tx.all(
        "SELECT kind, year, block FROM number_blocks WHERE node = ? ORDER BY kind, year, block",
        (node,),
    )
    pending = tx.all("SELECT value FROM sync_state WHERE key LIKE 'lease_key:%'")
    return {
        **inc.to_json(),
        "outbox_head": int(tx.scalar("SELECT COALESCE(MAX(seq), 0) AS h FROM outbox")),
        "held_blocks": [[r["kind"], int(r["year"]), int(r["block"])] for r in held],
        "pending_lease_keys": sorted(str(r["value"]) for r in pending),
    }


def accept_hello(tx: Tx, node: str, verdict: str, leases: list[dict[str, Any]]) -> bool:
    """Apply the cloud's answer; True when this disk was rolled back (new incarnation).

    Blocks the cloud leased to this node that the disk does not hold were
    spent (or may have been) by an earlier life: they are recorded as used
    up.  A block leased to the *current* incarnation that the disk neither
    holds nor is still asking for proves the disk was rolled back.
    """
    inc = ensure(tx, node)
    pending = {str(r["value"]) for r in tx.all("SELECT value FROM sync_state"
                                               " WHERE key LIKE 'lease_key:%'")}  # fmt: skip
    rolled = verdict == "rolled_back"
    for lease in leases:
        kind, year, block = lease["kind"], int(lease["year"]), int(lease["block"])
        held = tx.one(
            "SELECT node FROM number_blocks WHERE kind = ? AND year = ? AND block = ?",
            (kind, year, block),
        )
        if held is not None:
            continue
        if lease["incarnation"] == inc.id and lease["request_key"] in pending:
            continue  # the lease in flight; the next top-up accepts it
        if lease["incarnation"] == inc.id:
            rolled = True
        numbering.record_spent_block(tx, kind, year, block, node)
    if rolled:
        start(tx, node, "rolled_back")
    return rolled


def count_recovered(tx: Tx, applied: int) -> None:
    """In the transaction that applied a page of ``sync/recover``: keep the running total,
    so a recovery cut by a restart or a failed cycle still reports every change."""
    _set_state(tx, RECOVERED, str(int(_state(tx, RECOVERED) or 0) + applied))


def finish_recovery(tx: Tx, node: str) -> None:
    """Own history is back: tell staff what happened and what the cloud knew."""
    reason = _state(tx, RECOVERY)
    if reason is None:
        return
    recovered = int(_state(tx, RECOVERED) or 0)
    tx.execute("DELETE FROM sync_state WHERE key IN (?, ?, ?)",
               (RECOVERY, RECOVER_CURSOR, RECOVERED))  # fmt: skip
    inc = current(tx, node)
    if reason == "new" and recovered == 0:
        return  # a first start: nothing to tell
    detail = (
        f"this edge started incarnation {inc.id if inc else '?'} ({reason}); "
        f"{recovered} change(s) of this node that the cloud held but this disk lacked were"
        " re-applied. Orders and requests taken here after the backup that never reached the"
        " cloud are lost with the old disk: compare with the cloud's order list. Number"
        " blocks this disk held were retired; new numbers come from new blocks."
    )
    raise_attention(tx, "node_recovered", "node", node, node, detail,
                    {"reason": reason, "recovered": recovered,
                     "incarnation": inc.id if inc else None})  # fmt: skip


def recovery_state(tx: Tx) -> tuple[str | None, int]:
    return _state(tx, RECOVERY), int(_state(tx, RECOVER_CURSOR) or 0)
