"""Compacting the cloud's change feed: fewer rows, the same state for every reader.

A record's feed rows are grouped by (entity, entity id, site): rows of one
group are seen by exactly the same nodes.  Of each group compaction keeps the
**first** row (the record's first appearance, so an order never reaches a node
before its member, nor a stock movement before its order) and the **last**
row, and removes the rows in between once every active node that reads them
has pulled past them (the cursor each pull reports), or once they are older
than the retention bound (a node that has not pulled for that long reads the
compacted feed like a fresh one).

What a reader ends with does not change:

* products, members and consent are last-writer-wins on every edge: the
  kept last row is the one whose payload every reader of the group ends with;
* orders and concierge requests are merged (joins, ``sync/merge.py``): the
  kept last row is rewritten to the cloud's current record, the join of every
  row the cloud applied, and re-keyed (incarnation ``~compact``) so that even
  its own origin pulls it (a node restored from a backup may lack what the
  removed rows carried);
* stock movements (a union, each one counts), attendance and refused rows are
  never removed.

A removed row's idempotency key stays a duplicate: ``sync_compacted`` keeps,
per (origin, incarnation), the highest outbox seq removed; a node pushes an
incarnation's changes in order, so every key up to it reached the cloud.  The
cloud's own outbox rows removed inside the outbox copier's look-back
window (``CloudSync.ingest_outbox``) are noted in ``sync_compacted_outbox``,
so the copier never copies them twice.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from edge.shop.db import Row, Tx
from edge.shop.errors import NotFound
from edge.shop.records import jsonable
from sync import feed
from sync.cloud import INGEST_LOOKBACK, CloudSync

log = logging.getLogger(__name__)
MERGED = ("order", "concierge_request")  # last row rewritten to the cloud's record
LAST_WINS = ("member", "consent", "product")
RETENTION_DAYS = 30.0
CHUNK = 500  # rows removed per transaction (pushes wait on the chain lock meanwhile)


@dataclass(frozen=True)
class Compaction:
    rows_before: int
    rows_after: int
    removed: int
    rewritten: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def feed_rows(tx: Tx) -> int:
    return int(tx.scalar("SELECT COUNT(*) AS n FROM sync_changes"))


def compact(
    sync: CloudSync, *, retention_days: float = RETENTION_DAYS, now: datetime | None = None
) -> Compaction:
    """One compaction pass (blocking; the API runs it on its thread pool)."""
    sync.ingest_outbox()  # the cloud's own changes are in the feed before records are read
    db = sync.shop.db
    kinds = (*MERGED, *LAST_WINS)
    marks = ", ".join("?" for _ in kinds)
    with db.read() as tx:
        before = feed_rows(tx)
        middle = tx.all(
            "SELECT seq, entity, entity_id, site, origin, incarnation, origin_seq, received_at,"
            " last_seq FROM (SELECT seq, entity, entity_id, site, origin, incarnation,"
            " origin_seq, received_at,"
            " MIN(seq) OVER (PARTITION BY entity, entity_id, site) AS first_seq,"
            " MAX(seq) OVER (PARTITION BY entity, entity_id, site) AS last_seq"
            f" FROM sync_changes WHERE status = 'applied' AND entity IN ({marks})) g"
            " WHERE seq <> first_seq AND seq <> last_seq ORDER BY seq",
            kinds,
        )
        bound = _bounds(tx)
        edge_nodes = {str(r["node_id"]) for r in tx.all("SELECT node_id FROM edge_nodes")}
        ingested = int(tx.scalar("SELECT value FROM sync_state WHERE key = 'outbox_ingested'") or 0)
    cutoff = ((now or datetime.now(UTC)) - timedelta(days=retention_days)).isoformat()
    chain = bound[None]

    def removable(r: Row) -> bool:
        seen_by_all = int(r["seq"]) <= bound.get(r["site"], chain)
        return seen_by_all or str(r["received_at"]) < cutoff

    doomed = [r for r in middle if removable(r)]
    removed = rewritten = 0
    for start in range(0, len(doomed), CHUNK):
        chunk = doomed[start : start + CHUNK]
        with db.write() as tx:
            feed.chain_lock(tx)  # no push is between deduplicating and writing meanwhile
            n, w = _remove(sync, tx, chunk, edge_nodes)
        removed, rewritten = removed + n, rewritten + w
    with db.write() as tx:
        # Behind the copier's look-back window, removed outbox rows need no note.
        tx.execute("DELETE FROM sync_compacted_outbox WHERE seq <= ?",
                   (ingested - INGEST_LOOKBACK,))  # fmt: skip
        after = feed_rows(tx)
    result = Compaction(before, after, removed, rewritten)
    log.info("feed compacted: %s", result.to_json())
    return result


def _bounds(tx: Tx) -> dict[str | None, float]:
    """The lowest pull cursor among the active nodes reading each site's rows
    (key None: chain-wide rows, read by every node).  A node that never pulled
    reads from the start, which is what compaction keeps right: it does not count."""
    rows = tx.all(
        "SELECT s.site_id, c.value FROM edge_nodes n"
        " JOIN sync_state c ON c.key = 'node:' || n.node_id || ':cursor'"
        " LEFT JOIN site_nodes s ON s.node_id = n.node_id WHERE n.active = 1"
    )
    inf = float("inf")
    bound: dict[str | None, float] = {None: inf}
    chain_wide = inf  # nodes of no site read every site's rows
    for r in rows:
        cursor = float(r["value"])
        site = r["site_id"]
        bound[None] = min(bound[None], cursor)
        if site is None:
            chain_wide = min(chain_wide, cursor)
        else:
            bound[site] = min(bound.get(site, inf), cursor)
    return {k: min(v, chain_wide) for k, v in bound.items()}


def _remove(sync: CloudSync, tx: Tx, rows: list[Row], edge_nodes: set[str]) -> tuple[int, int]:
    """Delete ``rows`` (middles of their groups); rewrite their groups' merged last rows."""
    lasts = sorted({int(r["last_seq"]) for r in rows if r["entity"] in MERGED})
    keyed = [r for r in rows if r["incarnation"] != feed.COMPACTED]
    kept: set[int] = set()  # groups whose record is gone (never expected): left whole
    rewritten = 0
    if lasts:
        marks = ", ".join("?" for _ in lasts)
        for last in tx.all(
            "SELECT seq, entity, entity_id, origin, incarnation, origin_seq FROM sync_changes"
            f" WHERE seq IN ({marks}) AND status = 'applied'",
            lasts,
        ):
            try:
                record = _record(sync, tx, str(last["entity"]), str(last["entity_id"]))
            except NotFound:
                kept.add(int(last["seq"]))
                continue
            if last["incarnation"] != feed.COMPACTED:
                keyed.append(last)  # its key goes with the rewrite
            rewritten += tx.execute(
                "UPDATE sync_changes SET payload = ?, op = 'compact', incarnation = ?,"
                " origin_seq = seq WHERE seq = ?",
                (json.dumps(jsonable(record), sort_keys=True), feed.COMPACTED, last["seq"]),
            )
    upto: dict[tuple[str, str], int] = {}
    for r in keyed:
        if int(r["last_seq"] if "last_seq" in r else r["seq"]) in kept:
            continue
        at = (str(r["origin"]), str(r["incarnation"]))
        upto[at] = max(upto.get(at, 0), int(r["origin_seq"]))
    own = sorted({(str(r["origin"]), int(r["origin_seq"])) for r in keyed
                  if r["incarnation"] == "" and r["origin"] not in edge_nodes})  # fmt: skip
    for origin, seq in own:  # the cloud's own outbox rows: never copied again
        tx.execute("INSERT INTO sync_compacted_outbox (node, seq) VALUES (?, ?)"
                   " ON CONFLICT DO NOTHING", (origin, seq))  # fmt: skip
    for (origin, incarnation), seq in sorted(upto.items()):
        tx.execute(
            "INSERT INTO sync_compacted (origin, incarnation, upto) VALUES (?, ?, ?)"
            " ON CONFLICT (origin, incarnation) DO UPDATE SET upto ="
            " CASE WHEN excluded.upto > sync_compacted.upto THEN excluded.upto"
            " ELSE sync_compacted.upto END",
            (origin, incarnation, seq),
        )
    gone = [int(r["seq"]) for r in rows if int(r["last_seq"]) not in kept]
    if not gone:
        return 0, rewritten
    marks = ", ".join("?" for _ in gone)
    removed = tx.execute(f"DELETE FROM sync_changes WHERE seq IN ({marks})", gone)
    return removed, rewritten


def _record(sync: CloudSync, tx: Tx, entity: str, entity_id: str) -> dict[str, Any]:
    """The cloud's current record, as its own changes carry it."""
    if entity == "order":
        return sync.shop._order(tx, entity_id).to_json()
    return sync.shop._request(tx, entity_id).to_json()
