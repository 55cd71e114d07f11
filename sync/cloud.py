"""The cloud side of sync: deduplicate and apply pushes, serve the change feed.

All methods are synchronous (one transaction each); the API calls them from
its thread pool.  Every write to ``sync_changes`` holds one feed lock (an
advisory lock on PostgreSQL, the single writer lock on SQLite), so feed
sequence numbers are handed out in commit order and a puller's cursor can
never skip a change that commits late.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from edge.shop import Shop
from edge.shop.db import Row, Tx
from edge.shop.errors import Forbidden, NotFound
from edge.shop.numbering import Kind, lease_block
from sync import sites
from sync.apply import Applier, Change
from sync.attention import raise_attention, utc_stamp
from sync.poison import is_poison, refuse_nul, storable
from sync.poison import reason as poison_reason
from sync.schema import migrate_sync

FEED_LOCK = 7_301_001
INGEST_LOOKBACK = 1000  # outbox seqs re-checked for late commits (see ingest_outbox)
INGEST_BATCH = 5000


@dataclass(frozen=True)
class Ack:
    key: str
    cloud_seq: int
    status: str  # applied | rejected | duplicate
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "cloud_seq": self.cloud_seq, "status": self.status,
                "reason": self.reason}  # fmt: skip


def _feed_lock(tx: Tx) -> None:
    if tx.dialect == "postgres":
        tx.all("SELECT pg_advisory_xact_lock(?)", (FEED_LOCK,))


def _set_state(tx: Tx, key: str, value: str) -> None:
    tx.execute(
        "INSERT INTO sync_state (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def _insert_feed(
    tx: Tx, c: Change, status: str, reason: str | None, site: str | None = None
) -> int:
    rows = tx.all(
        "INSERT INTO sync_changes (origin, incarnation, origin_seq, entity, entity_id, op,"
        " payload, created_at, received_at, status, reason, site)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
        (c.origin, c.incarnation, c.origin_seq, c.entity, c.entity_id, c.op,
         json.dumps(c.payload, sort_keys=True), c.created_at, utc_stamp(), status, reason,
         site),
    )  # fmt: skip
    return int(rows[0]["seq"])


def _insert_feed_many(
    tx: Tx, rows: list[tuple[Change, str, str | None]], site: str | None
) -> dict[tuple[str, int], int]:
    """A batch's feed rows in one statement per 200 (in order, under the feed lock);
    their seqs by (incarnation, origin seq)."""
    seqs: dict[tuple[str, int], int] = {}
    stamp = utc_stamp()
    for start in range(0, len(rows), 200):
        chunk = rows[start : start + 200]
        values = ", ".join("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" for _ in chunk)
        params = [v for c, status, reason in chunk
                  for v in (c.origin, c.incarnation, c.origin_seq, c.entity, c.entity_id, c.op,
                            json.dumps(c.payload, sort_keys=True), c.created_at, stamp, status,
                            reason, site)]  # fmt: skip
        for r in tx.all(
            "INSERT INTO sync_changes (origin, incarnation, origin_seq, entity, entity_id, op,"
            f" payload, created_at, received_at, status, reason, site) VALUES {values}"
            " RETURNING seq, incarnation, origin_seq",
            params,
        ):
            seqs[(str(r["incarnation"]), int(r["origin_seq"]))] = int(r["seq"])
    return seqs


_SITE_OWNED = {"order": "orders", "concierge_request": "concierge_requests"}


def _same_site(tx: Tx, c: Change, site: str | None) -> None:
    """A site's node may not change another site's orders or requests (poison: rejected)."""
    table = _SITE_OWNED.get(c.entity)
    if table is None or site is None:
        return
    row = tx.one(f"SELECT site, origin_node FROM {table} WHERE id = ?", (c.entity_id,))
    if row is None:
        return
    # The record's pickup site (a web order's too); a record from before sites:
    # the site of the node that made it.
    owner = row["site"] if row["site"] is not None else sites.site_of(tx, str(row["origin_node"]))
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


def _seen(tx: Tx, node: str, batch: list[Change]) -> dict[tuple[str, int], Row]:
    """The feed rows this node's batch already has, by (incarnation, origin seq): one query."""
    if not batch:
        return {}
    incarnations = sorted({c.incarnation for c in batch})
    marks = ", ".join("?" for _ in incarnations)
    seqs = [c.origin_seq for c in batch]
    rows = tx.all(
        "SELECT incarnation, origin_seq, seq, status, reason FROM sync_changes"
        f" WHERE origin = ? AND incarnation IN ({marks}) AND origin_seq BETWEEN ? AND ?",
        (node, *incarnations, min(seqs), max(seqs)),
    )
    return {(str(r["incarnation"]), int(r["origin_seq"])): r for r in rows}


class CloudSync:
    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        # The cloud is the chain's shop: orders name a site, sites have their stock.
        shop.site_book = sites.SiteBook()
        self.applier = Applier(shop, "cloud")

    def migrate(self) -> int:
        return migrate_sync(self.shop.db)

    def push(self, node: str, changes: list[Change]) -> list[Ack]:
        """Apply a node's batch in one transaction; a key seen before changes nothing.

        The batch is first applied as a whole; only when one of its changes is
        poison is it rolled back and applied again change by change, each in a
        savepoint of its own, so the poison one is refused and the rest apply.
        """
        with self.shop.db.write() as tx:
            _feed_lock(tx)
            site = sites.site_of(tx, node)
            batch = [replace(c, site=site) for c in changes]
            seen = _seen(tx, node, batch)
            tx.execute("SAVEPOINT sync_batch")
            try:
                acks = self._apply_batch(tx, batch, dict(seen), site, isolate=False)
            except _Poisoned:
                tx.execute("ROLLBACK TO SAVEPOINT sync_batch")
                acks = self._apply_batch(tx, batch, dict(seen), site, isolate=True)
            tx.execute("RELEASE SAVEPOINT sync_batch")
            _set_state(tx, f"node:{node}:last_push", utc_stamp())
        return acks

    def _apply_batch(
        self, tx: Tx, batch: list[Change], seen: dict[tuple[str, int], Row], site: str | None,
        *, isolate: bool,
    ) -> list[Ack]:  # fmt: skip
        done: list[tuple[Change, str, str | None]] = []  # in order; feed rows written last
        for c in batch:
            if (c.incarnation, c.origin_seq) in seen:
                continue
            if isolate:
                status, reason = self._apply_one(tx, c, site)
            else:
                try:
                    self._apply(tx, c, site)
                except Exception as exc:
                    if is_poison(exc):
                        raise _Poisoned from exc
                    raise  # transient: the batch answers 5xx and is sent again
                status, reason = "applied", None
            kept = c if status == "applied" else storable(c)
            if status == "applied" and site is not None:
                # Its share rows go first: a member reaches a site before its order.
                self._share_member(tx, _member_of(c), site)
            done.append((kept, status, reason))
            seen[(c.incarnation, c.origin_seq)] = {"seq": None, "status": status,
                                                   "reason": reason}  # fmt: skip
        seqs = _insert_feed_many(tx, done, site)
        mine = {(c.incarnation, c.origin_seq) for c, _, _ in done}
        acks: list[Ack] = []
        for c in batch:
            at = (c.incarnation, c.origin_seq)
            if at in mine:
                mine.discard(at)  # the first of a key sent twice applied; the rest duplicate
                acks.append(Ack(c.key, seqs[at], seen[at]["status"], seen[at]["reason"]))
                continue
            before = seen[at]
            # A retry of a refused change hears the reason again (quarantine).
            why = before["reason"] if before["status"] == "rejected" else None
            acks.append(Ack(c.key, seqs.get(at) or int(before["seq"]), "duplicate", why))
        return acks

    def _apply(self, tx: Tx, c: Change, site: str | None) -> None:
        refuse_nul(("entity_id", c.entity_id), ("op", c.op), ("payload", c.payload))
        _same_site(tx, c, site)
        self.applier.apply(tx, c)

    def _apply_one(self, tx: Tx, c: Change, site: str | None) -> tuple[str, str | None]:
        tx.execute("SAVEPOINT sync_change")
        try:
            self._apply(tx, c, site)
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

    def _share_member(self, tx: Tx, member_id: str | None, site: str) -> None:
        """First time ``member_id`` is of ``site``: its record (and consent) enter the site's
        partition of the feed, ahead of the change that linked them."""
        if member_id is None or not sites.link_member(tx, member_id, site):
            return
        row = tx.one("SELECT id FROM members WHERE id = ?", (member_id,))
        if row is None:
            return
        now = utc_stamp()
        shared = [("member", self.shop._member(tx, member_id).to_json())]
        consent = tx.one("SELECT biometric FROM member_consent WHERE member_id = ?", (member_id,))
        if consent is not None:
            shared.append(("consent", {"member_id": member_id,
                                       "biometric": bool(consent["biometric"])}))  # fmt: skip
        for entity, payload in shared:
            share = f"share:{site}:{member_id}:{entity}"  # once per (site, member, entity)
            c = Change("cloud", 1, entity, member_id, "share", payload, now, share)
            _insert_feed(tx, c, "applied", None, site)

    def enroll(self, member_id: str, site: str, actor: str) -> dict[str, Any]:
        """Enrol a member at ``site`` (a spa they may visit): its nodes learn the member."""
        with self.shop.db.write() as tx:
            _feed_lock(tx)
            self.shop._member(tx, member_id)
            if not sites.SiteBook().known(tx, site):
                raise NotFound("site", site)
            self._share_member(tx, member_id, site)
            sites.audit(tx, actor, "member.enroll", member_id, {"site": site})
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
        arrive in order after a cursor.
        """
        total = 0
        while True:
            with self.shop.db.write() as tx:
                _feed_lock(tx)
                cursor = int(
                    tx.scalar("SELECT value FROM sync_state WHERE key = 'outbox_ingested'") or 0
                )
                rows = tx.all(
                    "SELECT o.seq, o.entity, o.entity_id, o.op, o.payload, o.node, o.created_at,"
                    " o.site FROM outbox o LEFT JOIN sync_changes s"
                    " ON s.origin = o.node AND s.incarnation = '' AND s.origin_seq = o.seq"
                    " WHERE o.seq > ? AND s.seq IS NULL ORDER BY o.seq LIMIT ?",
                    (cursor - INGEST_LOOKBACK, INGEST_BATCH),
                )
                for r in rows:
                    c = Change(r["node"], int(r["seq"]), r["entity"], r["entity_id"], r["op"],
                               json.loads(r["payload"]), r["created_at"])  # fmt: skip
                    if r["site"] is not None:
                        self._share_member(tx, _member_of(c), r["site"])
                    _insert_feed(tx, c, "applied", None, r["site"])
                if rows:
                    _set_state(tx, "outbox_ingested", str(max(cursor, int(rows[-1]["seq"]))))
            total += len(rows)
            if len(rows) < INGEST_BATCH:
                return total

    def pull(self, node: str, after: int, limit: int) -> dict[str, Any]:
        """Changes after ``after`` that ``node`` did not make itself, in feed order."""
        self.ingest_outbox()
        with self.shop.db.read() as tx:
            # Head first: feed seqs commit in order, so every seq <= head is
            # visible to the next statement even under READ COMMITTED.
            head = int(tx.scalar("SELECT COALESCE(MAX(seq), 0) AS h FROM sync_changes"))
            site = sites.site_of(tx, node)
            partition = "" if site is None else _PARTITION
            rows = tx.all(
                "SELECT seq, origin, origin_seq, entity, entity_id, op, payload, created_at"
                " FROM sync_changes WHERE seq > ? AND seq <= ? AND origin <> ?"
                f" AND status = 'applied' AND entity <> 'attendance'{partition}"
                " ORDER BY seq LIMIT ?",
                (after, head, node, *(() if site is None else (site, site)), limit),
            )
        full = len(rows) == limit
        cursor = int(rows[-1]["seq"]) if full else max(head, after)
        with self.shop.db.write() as tx:
            _set_state(tx, f"node:{node}:last_pull", utc_stamp())
        changes = [{**r, "payload": json.loads(r["payload"])} for r in rows]
        return {"changes": changes, "next_cursor": cursor, "more": full}

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
