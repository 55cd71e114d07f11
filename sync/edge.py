"""The edge side of sync, synchronous: cursors, outbox batches, applying pulls.

The push cursor (last outbox seq the cloud acknowledged) and the pull cursor
(last cloud feed seq applied) live in ``sync_state`` in the shop's own SQLite
file, and each moves in the same transaction as the work it records, so a
crash at any instant loses nothing and repeats nothing (a repeated push is
deduplicated by the cloud).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from drivers.config import StrictModel
from edge.shop import Shop
from edge.shop.db import Tx
from edge.shop.numbering import Kind
from sync import incarnation
from sync.apply import Applier, Change
from sync.attention import count_open, list_attention, raise_attention, utc_stamp
from sync.poison import is_poison
from sync.poison import reason as poison_reason
from sync.privacy import assert_no_biometrics
from sync.schema import migrate_sync

# Managed in the cloud: an edge's own edits to these stay local.
NOT_PUSHED = frozenset({"product", "consent"})


class AttendanceEvent(StrictModel):
    """A door event as it leaves the edge: who, where, when; nothing biometric.

    Unknown keys are refused, so a face crop or template cannot ride along.
    """

    member_id: str = Field(min_length=1, max_length=64, description="Member who passed.")
    door: str = Field(min_length=1, max_length=64, description="Door id from the site config.")
    direction: Literal["in", "out"] = Field(description="Entering or leaving.")
    at: datetime = Field(description="When, as measured by the edge (timezone-aware).")


@dataclass(frozen=True)
class PullResult:
    applied: int
    rejected: int
    member_events: list[tuple[int, str, bool, bool]]


class EdgeSync:
    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self.applier = Applier(shop, "edge")

    def migrate(self) -> int:
        return migrate_sync(self.shop.db)

    # ---- state --------------------------------------------------------------------
    @staticmethod
    def _get(tx: Tx, key: str, default: str | None = None) -> str | None:
        value = tx.scalar("SELECT value FROM sync_state WHERE key = ?", (key,))
        return default if value is None else str(value)

    @staticmethod
    def _set(tx: Tx, key: str, value: str) -> None:
        tx.execute(
            "INSERT INTO sync_state (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def cursors(self) -> tuple[int, int]:
        with self.shop.db.read() as tx:
            return int(self._get(tx, "push_cursor", "0") or 0), int(
                self._get(tx, "pull_cursor", "0") or 0
            )

    def record_success(self) -> None:
        with self.shop.db.write() as tx:
            self._set(tx, "last_success", utc_stamp())

    def record_error(self, message: str) -> None:
        with self.shop.db.write() as tx:
            self._set(tx, "last_error", message[:1000])
            self._set(tx, "last_error_at", utc_stamp())

    # ---- push -------------------------------------------------------------------------
    def pending(self, limit: int, after: int | None = None) -> tuple[list[Change], int]:
        """Up to ``limit`` changes to send after ``after`` (default: the push cursor),
        and the outbox seq they reach.

        Changes the cloud does not take from edges are skipped (the cursor
        still passes them).  Raises ``BiometricDataRefused`` before anything
        biometric could be sent.
        """
        push_cursor = self.cursors()[0] if after is None else after
        rows = self.shop.outbox(push_cursor, limit)
        node = self.shop.config.node_id
        with self.shop.db.read() as tx:
            known = incarnation.current(tx, node) is not None
        if not known:  # normally started by sync/hello already
            with self.shop.db.write() as tx:
                incarnation.ensure(tx, node)
        with self.shop.db.read() as tx:
            past = incarnation.lineage(tx, node)
        changes = []
        for r in rows:
            if r["entity"] in NOT_PUSHED:
                continue
            assert_no_biometrics(r["entity"], r["payload"])
            seq = int(r["seq"])
            inc = incarnation.key_incarnation(past, seq)
            changes.append(Change(node, seq, r["entity"], r["entity_id"], r["op"], r["payload"],
                                  r["created_at"], inc))  # fmt: skip
        reach = int(rows[-1]["seq"]) if rows else push_cursor
        return changes, reach

    def acknowledge(
        self,
        reach: int,
        last_cloud_seq: int | None,
        refused: list[tuple[Change, str]] | None = None,
    ) -> None:
        """Move the push cursor; changes the cloud refused for good go to the quarantine."""
        with self.shop.db.write() as tx:
            for c, why in refused or ():
                quarantine(tx, c, why)
            current = int(self._get(tx, "push_cursor", "0") or 0)
            self._set(tx, "push_cursor", str(max(current, reach)))
            if last_cloud_seq is not None:
                self._set(tx, "last_ack_cloud_seq", str(last_cloud_seq))

    def queue_depth(self) -> int:
        push_cursor, _ = self.cursors()
        marks = ", ".join("?" for _ in NOT_PUSHED)
        with self.shop.db.read() as tx:
            return int(
                tx.scalar(
                    f"SELECT COUNT(*) AS n FROM outbox WHERE seq > ? AND entity NOT IN ({marks})",
                    (push_cursor, *sorted(NOT_PUSHED)),
                )
            )

    # ---- pull -------------------------------------------------------------------------
    def apply_pulled(
        self, changes: list[Change], next_cursor: int, cursor_key: str = "pull_cursor"
    ) -> PullResult:
        """One transaction: every change, held stock retried, the cursor moved."""
        applied = rejected = 0
        with self.shop.db.write() as tx:
            for c in changes:
                tx.execute("SAVEPOINT sync_change")
                try:
                    self.applier.apply(tx, c)
                    applied += 1
                except Exception as exc:
                    if not is_poison(exc):
                        raise  # storage trouble: the page is applied again next cycle
                    tx.execute("ROLLBACK TO SAVEPOINT sync_change")
                    rejected += 1
                    raise_attention(tx, "rejected_change", c.entity, c.entity_id, c.origin,
                                    poison_reason(exc),
                                    {"key": c.key, "op": c.op, "payload": c.payload})  # fmt: skip
                tx.execute("RELEASE SAVEPOINT sync_change")
            self.retry_held(tx)
            if cursor_key == incarnation.RECOVER_CURSOR:
                incarnation.count_recovered(tx, applied)
            self._set(tx, cursor_key, str(next_cursor))
        return PullResult(applied, rejected, self.member_events())

    def retry_held(self, tx: Tx) -> int:
        """Apply held remote stock movements that now fit; returns how many did."""
        done = 0
        for h in tx.all("SELECT * FROM sync_held_movements ORDER BY id"):
            moved = self.shop.write_movement(
                tx, h["product_id"], int(h["delta"]), h["kind"], h["actor"],
                order_id=h["order_id"], note=h["note"],
            )  # fmt: skip
            if moved:
                tx.execute("DELETE FROM sync_held_movements WHERE id = ?", (h["id"],))
                self.shop.owe(tx, h["product_id"], int(h["delta"]))  # in the ledger now
                done += 1
        # The oversell_held items stay open: the shortfall is real until staff act on it
        # (sync/oversell.py), even once the cloud's hold lets the movement apply.
        return done

    def retry_held_now(self) -> int:
        with self.shop.db.write() as tx:
            return self.retry_held(tx)

    # ---- incarnations (sync/incarnation.py) -----------------------------------------
    def hello_body(self) -> dict[str, Any]:
        with self.shop.db.write() as tx:
            return incarnation.hello_body(tx, self.shop.config.node_id)

    def accept_hello(self, verdict: str, leases: list[dict[str, Any]]) -> bool:
        with self.shop.db.write() as tx:
            return incarnation.accept_hello(tx, self.shop.config.node_id, verdict, leases)

    def incarnation_id(self) -> str | None:
        with self.shop.db.read() as tx:
            inc = incarnation.current(tx, self.shop.config.node_id)
        return None if inc is None else inc.id

    def recovery(self) -> tuple[str | None, int, list[dict[str, Any]]]:
        """(pending reason or None, recover cursor, what this disk holds per incarnation)."""
        with self.shop.db.read() as tx:
            reason, cursor = incarnation.recovery_state(tx)
            return reason, cursor, incarnation.known_ranges(tx, self.shop.config.node_id)

    def finish_recovery(self) -> None:
        with self.shop.db.write() as tx:
            incarnation.finish_recovery(tx, self.shop.config.node_id)

    # ---- member hook ---------------------------------------------------------------------
    def member_events(self) -> list[tuple[int, str, bool, bool]]:
        with self.shop.db.read() as tx:
            rows = tx.all("SELECT id, member_id, active, consent FROM sync_member_events"
                          " ORDER BY id")  # fmt: skip
        return [(int(r["id"]), r["member_id"], bool(r["active"]), bool(r["consent"]))
                for r in rows]  # fmt: skip

    def member_event_done(self, event_id: int) -> None:
        with self.shop.db.write() as tx:
            tx.execute("DELETE FROM sync_member_events WHERE id = ?", (event_id,))

    # ---- numbers ---------------------------------------------------------------------------
    def lease_key(self, kind: Kind, year: int) -> str:
        """The request key of the next lease, stored first so a retry asks again the same."""
        key = f"lease_key:{kind}:{year}"
        with self.shop.db.write() as tx:
            value = self._get(tx, key)
            if value is None:
                value = uuid.uuid4().hex
                self._set(tx, key, value)
        return value

    def accept(self, kind: Kind, year: int, block: int) -> None:
        self.shop.accept_lease(kind, block, year)
        with self.shop.db.write() as tx:
            tx.execute("DELETE FROM sync_state WHERE key = ?", (f"lease_key:{kind}:{year}",))

    # ---- attendance ------------------------------------------------------------------------
    def record_attendance(self, event: AttendanceEvent | dict[str, Any]) -> str:
        """Queue a door event for the cloud; returns its id."""
        e = event if isinstance(event, AttendanceEvent) else AttendanceEvent.model_validate(event)
        event_id = uuid.uuid4().hex
        payload = {**e.model_dump(mode="json"), "id": event_id}
        assert_no_biometrics("attendance", payload)
        with self.shop.db.write() as tx:
            self.shop.record_change(tx, "attendance", event_id, "door", payload)
        return event_id

    # ---- status --------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """What the dashboard shows: freshness, backlog, errors, items for staff."""
        year = self.shop.today().year
        with self.shop.db.read() as tx:
            state = {r["key"]: r["value"] for r in tx.all("SELECT key, value FROM sync_state")}
            held = int(tx.scalar("SELECT COUNT(*) AS n FROM sync_held_movements"))
            quarantined = int(tx.scalar("SELECT COUNT(*) AS n FROM sync_quarantine"))
            open_items = count_open(tx)
        return {
            "last_success": state.get("last_success"),
            "last_error": state.get("last_error"),
            "last_error_at": state.get("last_error_at"),
            "queue_depth": self.queue_depth(),
            "incarnation": state.get(incarnation.CURRENT),
            "push_cursor": int(state.get("push_cursor", 0)),
            "pull_cursor": int(state.get("pull_cursor", 0)),
            "held_stock_movements": held,
            "quarantined": quarantined,
            "attention_open": open_items,
            "attention": [a.to_json() for a in list_attention(self.shop.db, limit=50)],
            "spare_numbers": {k: self.shop.spare_numbers(k, year) for k in ("PO", "CR")},
        }


def quarantine(tx: Tx, c: Change, why: str) -> None:
    """Keep a change the cloud refused for good, and tell staff here (the cloud tells its own)."""
    tx.execute(
        "INSERT INTO sync_quarantine (key, entity, entity_id, op, payload, reason, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
        (c.key, c.entity, c.entity_id, c.op, json.dumps(c.payload, sort_keys=True), why,
         utc_stamp()),
    )  # fmt: skip
    raise_attention(
        tx, "change_quarantined", c.entity, c.entity_id, c.origin,
        f"the cloud refused {c.entity} {c.entity_id} ({c.op}) for good: {why}. It is kept in"
        " the quarantine; the rest of the queue went on. Fix the record and save it again.",
        {"key": c.key, "reason": why},
    )  # fmt: skip


def sync_status(shop: Shop) -> dict[str, Any]:
    """For the LAN API (blocking; call it from an executor)."""
    return EdgeSync(shop).status()
