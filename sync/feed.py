"""Writing the cloud's change feed (``sync_changes``) without one lock per push batch.

Ordering guarantee pulls rely on: feed seqs become visible in seq order, so a
puller that has read seq ``n`` can never later meet a row below ``n``.  It
holds because every insert into the feed happens in a tiny serialised step at
the *end* of its transaction: :func:`feed_lock` (an advisory transaction lock
on PostgreSQL; SQLite has one writer anyway) is taken right before the rows
are inserted, and released by the commit that follows, so seqs are issued in
commit order.  The work before it (applying a batch) holds no feed lock.

Pushes of different sites therefore run side by side; :func:`push_lock`
serialises only what must not interleave: pushes of the same site (one
order's cancel from two desks must return the stock once, a node's retried
batch must not apply twice) and a chain-wide node's push against everything.
Compaction (``sync/compact.py``) takes the chain lock alone, so no push is
half-way through deduplicating while rows vanish.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edge.shop.db import Row, Tx
from sync.apply import Change
from sync.attention import utc_stamp

FEED_LOCK = 7_301_001  # the feed insert + commit (seq order = commit order)
CHAIN_LOCK = 7_301_002  # shared by site pushes; exclusive for chain-wide work
SITE_LOCK_CLASS = 7_301  # pg_advisory_xact_lock(7301, hashtext(site))
CHUNK = 500  # feed rows per INSERT statement
COMPACTED = "~compact"  # incarnation of a row compaction rewrote (sync/compact.py)

FeedRow = tuple[Change, str, str | None, str | None]  # change, status, reason, site


@dataclass(frozen=True)
class Ack:
    key: str
    cloud_seq: int
    status: str  # applied | rejected | duplicate
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "cloud_seq": self.cloud_seq, "status": self.status,
                "reason": self.reason}  # fmt: skip


def feed_lock(tx: Tx) -> None:
    """Take right before inserting feed rows; the commit releases it."""
    if tx.dialect == "postgres":
        tx.all("SELECT pg_advisory_xact_lock(?::bigint)", (FEED_LOCK,))


def push_lock(tx: Tx, site: str | None) -> None:
    """A site's pushes one at a time; a chain-wide node's push (site None) alone."""
    if tx.dialect != "postgres":
        return
    if site is None:
        tx.all("SELECT pg_advisory_xact_lock(?::bigint)", (CHAIN_LOCK,))
    else:
        tx.all(
            "SELECT pg_advisory_xact_lock_shared(?::bigint), pg_advisory_xact_lock(?::int,"
            " hashtext(?))",
            (CHAIN_LOCK, SITE_LOCK_CLASS, site),
        )


def chain_lock(tx: Tx) -> None:
    """Every push waits (compaction)."""
    if tx.dialect == "postgres":
        tx.all("SELECT pg_advisory_xact_lock(?::bigint)", (CHAIN_LOCK,))


_FEED_COLUMNS = ("origin, incarnation, origin_seq, entity, entity_id, op, payload, created_at,"
                 " received_at, status, reason, site")  # fmt: skip
_FEED_TYPES = "text, text, bigint, text, text, text, text, text, text, text, text, text"


def insert_rows(tx: Tx, rows: Sequence[FeedRow], *, skip_known: bool = False) -> dict[
    tuple[str, str, int], int
]:  # fmt: skip
    """Append ``rows`` in order (the caller holds :func:`feed_lock`); their seqs by
    (origin, incarnation, origin seq).  ``skip_known``: a key already in the feed is
    left as it is (another cloud worker copied the same outbox row first)."""
    seqs: dict[tuple[str, str, int], int] = {}
    stamp = utc_stamp()
    conflict = " ON CONFLICT (origin, incarnation, origin_seq) DO NOTHING" if skip_known else ""
    for start in range(0, len(rows), CHUNK):
        values = [(c.origin, c.incarnation, c.origin_seq, c.entity, c.entity_id, c.op,
                   json.dumps(c.payload, sort_keys=True), c.created_at, stamp, status, reason,
                   site) for c, status, reason, site in rows[start : start + CHUNK]]  # fmt: skip
        sql, params = tx.insert_statement(
            "sync_changes", _FEED_COLUMNS, _FEED_TYPES, values,
            f"{conflict} RETURNING seq, origin, incarnation, origin_seq",
        )  # fmt: skip
        for r in tx.all(sql, params):
            seqs[(str(r["origin"]), str(r["incarnation"]), int(r["origin_seq"]))] = int(r["seq"])
    return seqs


def seen(tx: Tx, node: str, batch: list[Change]) -> dict[tuple[str, int], Row]:
    """What the feed already has of this node's batch, by (incarnation, origin seq).

    One statement, so one snapshot: a key compaction removed (``sync_compacted``
    says up to which outbox seq of each incarnation it removed rows) is still a
    duplicate (``seq`` None), never applied a second time.
    """
    if not batch:
        return {}
    incarnations = sorted({c.incarnation for c in batch})
    marks = ", ".join("?" for _ in incarnations)
    seqs = [c.origin_seq for c in batch]
    rows = tx.all(
        "SELECT incarnation, origin_seq, seq, status, reason FROM sync_changes"
        f" WHERE origin = ? AND incarnation IN ({marks}) AND origin_seq BETWEEN ? AND ?"
        " UNION ALL SELECT incarnation, upto AS origin_seq, NULL AS seq, 'compacted' AS status,"
        f" NULL AS reason FROM sync_compacted WHERE origin = ? AND incarnation IN ({marks})",
        (node, *incarnations, min(seqs), max(seqs), node, *incarnations),
    )
    found: dict[tuple[str, int], Row] = {}
    upto: dict[str, int] = {}
    for r in rows:
        if r["status"] == "compacted":
            upto[str(r["incarnation"])] = int(r["origin_seq"])
        else:
            found[(str(r["incarnation"]), int(r["origin_seq"]))] = r
    for c in batch:
        at = (c.incarnation, c.origin_seq)
        if at not in found and c.origin_seq <= upto.get(c.incarnation, 0):
            found[at] = {"seq": None, "status": "applied", "reason": None}
    return found


def set_state(tx: Tx, values: dict[str, str]) -> None:
    """``sync_state`` keys in one statement."""
    rows = sorted(values.items())
    tx.execute(
        "INSERT INTO sync_state (key, value) VALUES "
        + ", ".join("(?, ?)" for _ in rows)
        + " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [v for pair in rows for v in pair],
    )


def decode(rows: list[Row]) -> list[dict[str, Any]]:
    return [{**r, "payload": json.loads(r["payload"])} for r in rows]


def acks(
    node: str, batch: list[Change], seen: dict[tuple[str, int], Row], done: list[FeedRow],
    seqs: dict[tuple[str, str, int], int],
) -> list[Ack]:  # fmt: skip
    """One acknowledgement per change of the batch, in order."""
    status = {(c.incarnation, c.origin_seq): (st, why) for c, st, why, _ in done
              if c.origin == node}  # fmt: skip
    acks: list[Ack] = []
    for c in batch:
        at = (c.incarnation, c.origin_seq)
        seq = seqs.get((node, *at))
        if at in status:
            st, why = status.pop(at)  # the first of a key sent twice applied; the rest duplicate
            acks.append(Ack(c.key, seq or 0, st, why))
            continue
        before = seen.get(at) or {"seq": seq, "status": "applied", "reason": None}
        # A retry of a refused change hears the reason again (quarantine).
        why = before["reason"] if before["status"] == "rejected" else None
        acks.append(Ack(c.key, seq or int(before["seq"] or 0), "duplicate", why))
    return acks
