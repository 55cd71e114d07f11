"""The cloud side of sync: deduplicate and apply pushes, serve the change feed.

All methods are synchronous (one transaction each); the API calls them from
its thread pool.  Pushes of different sites run side by side; feed rows are
written in a tiny serialised step at the end of each transaction, so feed
seqs are issued in commit order and a puller's cursor can never skip a change
that commits late (``sync/feed.py``).  Compaction: ``sync/compact.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from edge.shop import Shop
from edge.shop.db import Row, Tx
from edge.shop.errors import Forbidden, NotFound
from edge.shop.numbering import Kind, lease_block
from sync import feed, sites
from sync.apply import Applier, Change
from sync.attention import raise_attention, utc_stamp
from sync.feed import Ack, FeedRow
from sync.poison import is_poison, refuse_nul, storable
from sync.poison import reason as poison_reason
from sync.schema import migrate_sync

INGEST_LOOKBACK = 1000  # outbox seqs re-checked for late commits (see ingest_outbox)
INGEST_BATCH = 5000


_SITE_OWNED = {"order": "orders", "concierge_request": "concierge_requests"}


@dataclass(frozen=True)
class _Lookups:
    """What a push batch needs to know of the cloud, read once per batch, not per change."""

    owners: dict[tuple[str, str], str | None]  # records the cloud has: their site
    absent: frozenset[str]  # ids of the batch's orders and requests the cloud lacks
    linked: frozenset[str]  # members already of the pushing node's site


def _look_up(tx: Tx, batch: list[Change], site: str | None) -> _Lookups:
    owners: dict[tuple[str, str], str | None] = {}
    absent: set[str] = set()
    for entity, table in _SITE_OWNED.items():
        ids = sorted({c.entity_id for c in batch if c.entity == entity})
        if not ids:
            continue
        marks = ", ".join("?" for _ in ids)
        rows = tx.all(f"SELECT id, site, origin_node FROM {table} WHERE id IN ({marks})", ids)
        for r in rows:
            # The record's pickup site (a web order's too); a record from before
            # sites: the site of the node that made it.
            owner = r["site"] if r["site"] is not None else sites.site_of(tx, str(r["origin_node"]))
            owners[(entity, str(r["id"]))] = owner
        absent |= set(ids) - {str(r["id"]) for r in rows}
    linked: set[str] = set()
    members = sorted({m for c in batch if (m := _member_of(c)) is not None})
    if site is not None and members:
        marks = ", ".join("?" for _ in members)
        linked = {str(r["member_id"]) for r in tx.all(
            f"SELECT member_id FROM member_sites WHERE site = ? AND member_id IN ({marks})",
            (site, *members),
        )}  # fmt: skip
    return _Lookups(owners, frozenset(absent), frozenset(linked))


def _same_site(c: Change, site: str | None, owners: dict[tuple[str, str], str | None]) -> None:
    """A site's node may not change another site's orders or requests (poison: rejected).
    A record the cloud did not have when the batch began is this node's own."""
    if c.entity not in _SITE_OWNED or site is None:
        return
    owner = owners.get((c.entity, c.entity_id))
    if owner is not None and owner != site:
        raise Forbidden(f"entity_id: {c.entity} {c.entity_id} belongs to another site")


# A site's node reads the chain-wide rows (catalogue) and its own site's
# partition: its orders, requests and stock, and only the members who are of
# the site (sync.sites.link_member).  The chain's unsited stock and orders of
# no site stay in the cloud.
_PARTITION = (
    " AND (site IS NULL OR site = ?)"
    " AND NOT (site IS NULL AND entity IN ('stock_movement', 'order', 'concierge_request'))"
    " AND (entity NOT IN ('member', 'consent') OR EXISTS (SELECT 1 FROM member_sites m"
    " WHERE m.member_id = sync_changes.entity_id AND m.site = ?))"
)


def _member_of(c: Change) -> str | None:
    """The member a change makes a site's business, if any."""
    if c.entity in ("member", "consent"):
        return c.entity_id
    if c.entity in _SITE_OWNED:
        value = c.payload.get("member_id")
        return None if value is None else str(value)
    return None


class _Poisoned(Exception):
    """A change of the batch can never apply: redo the batch change by change."""


class CloudSync:
    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        # The cloud is the chain's shop: orders name a site, sites have their stock.
        shop.site_book = sites.SiteBook()
        self._sites: dict[str, str] = {}

    def migrate(self) -> int:
        return migrate_sync(self.shop.db)

    def push(self, node: str, changes: list[Change]) -> list[Ack]:
        """Apply a node's batch in one transaction; a key seen before changes nothing.

        The batch is first applied as a whole; only when one of its changes is
        poison is it rolled back and applied again change by change, each in a
        savepoint of its own, so the poison one is refused and the rest apply.
        Only pushes of the same site wait for each other (``feed.push_lock``);
        the feed rows go in last, in the short serialised step before commit.
        """
        with self.shop.db.write() as tx:
            site = self._site_of(tx, node)
            feed.push_lock(tx, site)
            batch = [replace(c, site=site) for c in changes]
            seen = feed.seen(tx, node, batch)
            new = [c for c in batch if (c.incarnation, c.origin_seq) not in seen]
            known = _look_up(tx, new, site)
            tx.execute("SAVEPOINT sync_batch")
            try:
                done = self._apply_batch(tx, batch, dict(seen), site, known, isolate=False)
            except _Poisoned:
                tx.execute("ROLLBACK TO SAVEPOINT sync_batch")
                done = self._apply_batch(tx, batch, dict(seen), site, known, isolate=True)
            tx.execute("RELEASE SAVEPOINT sync_batch")
            feed.set_state(tx, {f"node:{node}:last_push": utc_stamp()})
            feed.feed_lock(tx)
            seqs = feed.insert_rows(tx, done)
        return feed.acks(node, batch, seen, done, seqs)

    def _site_of(self, tx: Tx, node: str) -> str | None:
        """A node's site (bindings never change: kept per process once known)."""
        known = self._sites.get(node)
        if known is None:
            known = sites.site_of(tx, node)
            if known is not None:
                self._sites[node] = known
        return known

    def _apply_batch(
        self, tx: Tx, batch: list[Change], seen: dict[tuple[str, int], Row], site: str | None,
        known: _Lookups, *, isolate: bool,
    ) -> list[FeedRow]:  # fmt: skip
        """Apply the batch's new changes; the feed rows to write, in order."""
        done: list[FeedRow] = []
        applier = Applier(self.shop, "cloud", set(known.absent))
        if not isolate:
            applier.buffer = []  # new orders go in together (isolated: one by one)
        linked = set(known.linked)
        for c in batch:
            if (c.incarnation, c.origin_seq) in seen:
                continue
            if isolate:
                status, reason = self._apply_one(tx, c, site, applier, known)
            else:
                try:
                    self._apply(tx, c, site, applier, known)
                except Exception as exc:
                    if is_poison(exc):
                        raise _Poisoned from exc
                    raise  # transient: the batch answers 5xx and is sent again
                status, reason = "applied", None
            kept = c if status == "applied" else storable(c)
            if status == "applied" and site is not None:
                # Its share rows go first: a member reaches a site before its order.
                done += self._share_member(tx, _member_of(c), site, linked)
            done.append((kept, status, reason, site))
            seen[(c.incarnation, c.origin_seq)] = {"seq": None, "status": status,
                                                   "reason": reason}  # fmt: skip
        try:
            applier.flush(tx)
        except Exception as exc:
            if is_poison(exc):  # which one? the isolated run writes them one by one
                raise _Poisoned from exc
            raise
        return done

    def _apply(
        self, tx: Tx, c: Change, site: str | None, applier: Applier, known: _Lookups
    ) -> None:
        refuse_nul(("entity_id", c.entity_id), ("op", c.op), ("payload", c.payload))
        _same_site(c, site, known.owners)
        applier.apply(tx, c)

    def _apply_one(
        self, tx: Tx, c: Change, site: str | None, applier: Applier, known: _Lookups
    ) -> tuple[str, str | None]:
        tx.execute("SAVEPOINT sync_change")
        try:
            self._apply(tx, c, site, applier, known)
        except Exception as exc:
            if not is_poison(exc):
                raise  # transient: the batch answers 5xx and is sent again
            # A change that cannot apply is kept (feed row + attention), never lost.
            tx.execute("ROLLBACK TO SAVEPOINT sync_change")
            tx.execute("RELEASE SAVEPOINT sync_change")
            reason, kept = poison_reason(exc), storable(c)
            raise_attention(tx, "rejected_change", kept.entity, kept.entity_id, c.origin, reason,
                            {"key": c.key, "op": kept.op, "payload": c.payload})  # fmt: skip
            return "rejected", reason
        tx.execute("RELEASE SAVEPOINT sync_change")
        return "applied", None

    def _share_member(
        self, tx: Tx, member_id: str | None, site: str, linked: set[str] | None = None
    ) -> list[FeedRow]:
        """First time ``member_id`` is of ``site``: the feed rows that bring its record (and
        consent) into the site's partition, to be written ahead of the linking change.
        ``linked``: members known to be of ``site`` already (kept up to date)."""
        if member_id is None or (linked is not None and member_id in linked):
            return []
        if linked is not None:
            linked.add(member_id)
        if not sites.link_member(tx, member_id, site):
            return []
        row = tx.one("SELECT id FROM members WHERE id = ?", (member_id,))
        if row is None:
            return []
        now = utc_stamp()
        shared = [("member", self.shop._member(tx, member_id).to_json())]
        consent = tx.one("SELECT biometric FROM member_consent WHERE member_id = ?", (member_id,))
        if consent is not None:
            shared.append(("consent", {"member_id": member_id,
                                       "biometric": bool(consent["biometric"])}))  # fmt: skip
        out: list[FeedRow] = []
        for entity, payload in shared:
            share = f"share:{site}:{member_id}:{entity}"  # once per (site, member, entity)
            c = Change("cloud", 1, entity, member_id, "share", payload, now, share)
            out.append((c, "applied", None, site))
        return out

    def enroll(self, member_id: str, site: str, actor: str) -> dict[str, Any]:
        """Enrol a member at ``site`` (a spa they may visit): its nodes learn the member."""
        with self.shop.db.write() as tx:
            self.shop._member(tx, member_id)
            if not sites.SiteBook().known(tx, site):
                raise NotFound("site", site)
            rows = self._share_member(tx, member_id, site)
            sites.audit(tx, actor, "member.enroll", member_id, {"site": site})
            if rows:
                feed.feed_lock(tx)
                feed.insert_rows(tx, rows)
        return {"member_id": member_id, "site": site}

    def member_of_site(self, member_id: str, site: str) -> None:
        """NotFound unless ``member_id`` is of ``site`` (what a site's staff may touch)."""
        with self.shop.db.read() as tx:
            if tx.one("SELECT 1 AS x FROM member_sites WHERE member_id = ? AND site = ?",
                      (member_id, site)) is None:  # fmt: skip
                raise NotFound("member", member_id)

    def ingest_outbox(self) -> int:
        """Copy the cloud's own outbox into the feed; returns how many rows were new.

        Outbox sequence numbers on PostgreSQL can commit out of order, so rows
        are found by anti-join over a look-back window rather than trusted to
        arrive in order after a cursor.  Two workers may copy the same row at
        once: the feed's key keeps one.
        """
        total = 0
        while True:
            with self.shop.db.write() as tx:
                cursor = int(
                    tx.scalar("SELECT value FROM sync_state WHERE key = 'outbox_ingested'") or 0
                )
                rows = tx.all(
                    "SELECT o.seq, o.entity, o.entity_id, o.op, o.payload, o.node, o.created_at,"
                    " o.site FROM outbox o LEFT JOIN sync_changes s"
                    " ON s.origin = o.node AND s.incarnation = '' AND s.origin_seq = o.seq"
                    " WHERE o.seq > ? AND s.seq IS NULL AND NOT EXISTS (SELECT 1"
                    " FROM sync_compacted_outbox g WHERE g.node = o.node AND g.seq = o.seq)"
                    " ORDER BY o.seq LIMIT ?",
                    (cursor - INGEST_LOOKBACK, INGEST_BATCH),
                )
                if not rows:
                    return total
                out: list[FeedRow] = []
                for r in rows:
                    c = Change(r["node"], int(r["seq"]), r["entity"], r["entity_id"], r["op"],
                               json.loads(r["payload"]), r["created_at"])  # fmt: skip
                    if r["site"] is not None:
                        out += self._share_member(tx, _member_of(c), r["site"])
                    out.append((c, "applied", None, r["site"]))
                feed.set_state(tx, {"outbox_ingested": str(max(cursor, int(rows[-1]["seq"])))})
                feed.feed_lock(tx)
                feed.insert_rows(tx, out, skip_known=True)
            total += len(rows)
            if len(rows) < INGEST_BATCH:
                return total

    def pull(self, node: str, after: int, limit: int) -> dict[str, Any]:
        """Changes after ``after`` that ``node`` did not make itself, in feed order.

        A row compaction rewrote comes back to its own origin too (it may carry
        what others merged into the record).  ``after`` is kept as the node's
        cursor: compaction waits for the nodes of a site to pull past a row.
        """
        self.ingest_outbox()
        with self.shop.db.read() as tx:
            # Head first: feed seqs commit in order, so every seq <= head is
            # visible to the next statement even under READ COMMITTED.
            head = int(tx.scalar("SELECT COALESCE(MAX(seq), 0) AS h FROM sync_changes"))
            site = self._site_of(tx, node)
            partition = "" if site is None else _PARTITION
            rows = tx.all(
                "SELECT seq, origin, origin_seq, entity, entity_id, op, payload, created_at"
                " FROM sync_changes WHERE seq > ? AND seq <= ?"
                " AND (origin <> ? OR incarnation = ?)"
                f" AND status = 'applied' AND entity <> 'attendance'{partition}"
                " ORDER BY seq LIMIT ?",
                (after, head, node, feed.COMPACTED, *(() if site is None else (site, site)),
                 limit),
            )  # fmt: skip
        full = len(rows) == limit
        cursor = int(rows[-1]["seq"]) if full else max(head, after)
        with self.shop.db.write() as tx:
            feed.set_state(tx, {f"node:{node}:last_pull": utc_stamp(),
                                f"node:{node}:cursor": str(after)})  # fmt: skip
        return {"changes": feed.decode(rows), "next_cursor": cursor, "more": full}

    def lease(
        self, node: str, request_key: str, kind: Kind, year: int, incarnation: str = ""
    ) -> int:
        """A block of numbers for ``node``; the same ``request_key`` gets the same block."""
        with self.shop.db.write() as tx:
            row = tx.one(
                "SELECT block FROM sync_leases WHERE node = ? AND request_key = ? AND kind = ?"
                " AND year = ?",
                (node, request_key, kind, year),
            )
            if row is not None:
                return int(row["block"])
            sites.check_lease_quota(tx, node, kind, year)
            block = lease_block(tx, kind, year, node)
            tx.execute(
                "INSERT INTO sync_leases (node, request_key, kind, year, block, created_at,"
                " incarnation) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (node, request_key, kind, year, block, utc_stamp(), incarnation),
            )
        return block

    def set_consent(self, member_id: str, biometric: bool) -> dict[str, Any]:
        """Record a member's biometric consent; edges learn it by sync."""
        with self.shop.db.write() as tx:
            self.shop._member(tx, member_id)
            tx.execute(
                "INSERT INTO member_consent (member_id, biometric, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (member_id) DO UPDATE SET biometric = excluded.biometric,"
                " updated_at = excluded.updated_at",
                (member_id, int(biometric), utc_stamp()),
            )
            payload = {"member_id": member_id, "biometric": biometric}
            self.shop.record_change(tx, "consent", member_id, "set", payload)
        return payload

    def node_status(self) -> list[dict[str, Any]]:
        with self.shop.db.read() as tx:
            # The pattern is a parameter: a literal % reads as a placeholder on PostgreSQL.
            rows = tx.all("SELECT key, value FROM sync_state WHERE key LIKE ?", ("node:%",))
        nodes: dict[str, dict[str, Any]] = {}
        for r in rows:
            _, node, what = str(r["key"]).split(":", 2)
            nodes.setdefault(node, {"node": node})[what] = r["value"]
        return sorted(nodes.values(), key=lambda n: str(n["node"]))
