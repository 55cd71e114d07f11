"""Applying one remote change inside the caller's transaction.

This module decides what a remote change does (merge rules, oversells, site
checks); the shop writes it (``edge/shop/replica.py``,
``Shop.write_movement``), without an outbox row so nothing echoes.  The only
exception is a compensating stock movement the *cloud* creates; it goes
through ``Shop.record_change`` so every edge learns it (docs/sync.md).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

from edge.shop import Shop
from edge.shop.db import Tx
from edge.shop.errors import Conflict, NotFound, ValidationFailed
from edge.shop.replica import ORDER_MERGED, REQUEST_MERGED, cents
from sync import merge
from sync.attention import has_attention, raise_attention
from sync.oversell import HOLD_NOTE, raise_oversell

Role = Literal["cloud", "edge"]


@dataclass(frozen=True)
class Change:
    """One entry of a node's outbox as it travels; ``key`` is its idempotency key."""

    origin: str
    origin_seq: int
    entity: str
    entity_id: str
    op: str
    payload: dict[str, Any]
    created_at: str
    incarnation: str = ""  # "" for changes from before incarnations (and the cloud's own)
    site: str | None = None  # cloud: the pushing node's site (its orders' and stock's site)

    @property
    def key(self) -> str:
        return format_key(self.origin, self.incarnation, self.origin_seq)


def format_key(node: str, incarnation: str, seq: int) -> str:
    """``<node>:<incarnation>:<seq>``; the legacy ``<node>:<seq>`` when no incarnation."""
    return f"{node}:{incarnation}:{seq}" if incarnation else f"{node}:{seq}"


def parse_key(key: str) -> tuple[str, str, int]:
    """(node, incarnation, seq) of a key already checked against ``KEY_PATTERN``."""
    parts = key.split(":")
    if len(parts) == 2:
        return parts[0], "", int(parts[1])
    return parts[0], parts[1], int(parts[2])


INCARNATION_PATTERN = r"[0-9a-f]{16}"
KEY_PATTERN = rf"^[a-z0-9][a-z0-9_-]{{0,62}}(:{INCARNATION_PATTERN})?:[0-9]{{1,18}}$"


# The merge rules (sync/merge.py) and the shop's writer (edge/shop/replica.py) name the
# same fields: checked here once, at import.
assert set(ORDER_MERGED) == {"status", *merge.ORDER_SET_ONCE, *merge.ORDER_TEXT}
assert set(REQUEST_MERGED) == {"status", *merge.REQUEST_SET_ONCE, *merge.REQUEST_TEXT}


class Applier:
    """The rules for each entity, for the cloud or for an edge."""

    def __init__(self, shop: Shop, role: Role, absent: set[str] | None = None) -> None:
        self.shop = shop
        self.role = role
        # Ids of orders and requests known not to exist here (a push batch looked them
        # up at once): no look-up before inserting them.
        self.absent = absent if absent is not None else set()
        # A list: new orders wait there and go in together (``flush``), before
        # anything reads orders; None: each is written at once.
        self.buffer: list[tuple[str, dict[str, Any], str, str | None]] | None = None
        self.sales: list[Change] = []  # with a buffer: sales waiting to go in together
        self._stock_sites: dict[str | None, str | None] = {}

    def _stock_site(self, tx: Tx, site: str | None) -> str | None:
        """``Shop.stock_site``, looked up once per applier (one push batch in the cloud)."""
        if site not in self._stock_sites:
            self._stock_sites[site] = self.shop.stock_site(tx, site)
        return self._stock_sites[site]

    def apply(self, tx: Tx, c: Change) -> list[tuple[str, bool, bool]]:
        """Apply ``c``; returns member events (id, active, consent) for the hook."""
        handler = getattr(self, f"_{c.entity}", None)
        if handler is None:
            raise ValidationFailed("entity", f"unknown entity {c.entity!r}")
        if self.buffer is not None:
            if self._sale(c) and (not self.sales or self.sales[0].site == c.site):
                self.sales.append(c)  # stock moves nothing else of the batch reads
                return []
            if not (c.entity == "order" and c.entity_id in self.absent):
                self.flush(tx)
        result: list[tuple[str, bool, bool]] | None = handler(tx, c)
        return result or []

    # ---- catalogue and members (managed in the cloud) --------------------------
    def _product(self, tx: Tx, c: Change) -> None:
        if self.role == "cloud":
            raise Conflict("products are managed in the cloud", field="entity")
        self.shop.store_remote_product(tx, c.entity_id, c.payload, c.created_at)

    def _member(self, tx: Tx, c: Change) -> list[tuple[str, bool, bool]]:
        p = c.payload
        before = self.shop.remote_member_state(tx, c.entity_id)
        if before is not None and self.role == "cloud":
            return []  # the cloud owns memberships; an edge only introduces new members
        self.shop.store_remote_member(tx, c.entity_id, p, c.created_at, exists=before is not None)
        if self.role == "edge" and (before is None or bool(before["active"]) != bool(p["active"])):
            return [self._member_event(tx, c.entity_id)]
        return []

    def _consent(self, tx: Tx, c: Change) -> list[tuple[str, bool, bool]]:
        if self.role == "cloud":
            raise Conflict("consent is recorded in the cloud", field="entity")
        granted = int(bool(c.payload["biometric"]))
        tx.execute(
            "INSERT INTO member_consent (member_id, biometric, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (member_id) DO UPDATE SET biometric = excluded.biometric,"
            " updated_at = excluded.updated_at",
            (c.entity_id, granted, c.created_at),
        )
        return [self._member_event(tx, c.entity_id)]

    @staticmethod
    def _member_event(tx: Tx, member_id: str) -> tuple[str, bool, bool]:
        """Durably queue the hook call; it is delivered after commit (at least once)."""
        member = tx.one("SELECT active FROM members WHERE id = ?", (member_id,))
        consent = tx.one("SELECT biometric FROM member_consent WHERE member_id = ?", (member_id,))
        active = bool(member["active"]) if member else False
        granted = bool(consent["biometric"]) if consent else True
        tx.execute(
            "INSERT INTO sync_member_events (member_id, active, consent, created_at)"
            " VALUES (?, ?, ?, ?)",
            (member_id, int(active), int(granted), tx_stamp()),
        )
        return (member_id, active, granted)

    # ---- stock: a union of movements -----------------------------------------
    def _stock_movement(self, tx: Tx, c: Change) -> None:
        p = c.payload
        product_id, delta = str(p["product_id"]), int(p["delta"])
        actor = f"sync:{c.origin}"
        # Cloud: a site's node moves that site's stock; an edge has one stock.
        site = self._stock_site(tx, c.site) if self.role == "cloud" else None
        if (
            c.op == "cancellation"
            and p.get("order_id")
            and self._returned_by_other(tx, product_id, str(p["order_id"]), c.origin)
        ):
            return  # the order's stock came back once already, by another node's cancel
        order_id, why = p.get("order_id"), p.get("note")
        # The cloud's hold for an oversell: the units are owed here too (not sellable).
        hold = self.role == "edge" and c.op == "adjustment"
        hold = hold and str(why or "").startswith(HOLD_NOTE)
        move = functools.partial(self.shop.write_movement, tx, product_id, delta, c.op, actor,
                                 order_id=order_id, note=why, site=site,
                                 owed=delta if hold else 0)  # fmt: skip
        if move():
            if hold and not has_attention(tx, "oversell_held", product_id, open_only=True):
                # The cloud found an oversell: staff here must see it until they fix it.
                raise_oversell(tx, "oversell", product_id, delta, "cloud", p.get("order_id"))
            return
        if tx.one("SELECT id FROM products WHERE id = ?", (product_id,)) is None:
            raise NotFound("product", product_id)
        short = -(self.shop.stock_of(tx, product_id, site) + delta)
        if self.role == "edge":
            # Hold it until the cloud's compensation (or a restock) arrives.
            tx.execute(
                "INSERT INTO sync_held_movements (product_id, kind, delta, order_id, actor, note,"
                " origin, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (product_id, c.op, delta, p.get("order_id"), actor, p.get("note"), c.origin,
                 c.created_at),
            )  # fmt: skip
            self.shop.owe(tx, product_id, -delta)  # gone elsewhere: not sellable here
            raise_oversell(tx, "oversell_held", product_id, short, c.origin, p.get("order_id"))
            return
        # Cloud: hold the shortfall with a compensating adjustment first (the
        # ledger never dips below zero) counted as owed (so it is never sold or
        # shown), then record the sale as it happened.
        note = f"{HOLD_NOTE} {short} unit(s) owed, see attention"
        self.compensate(tx, product_id, short, p.get("order_id"), note, site, hold=True)
        move()
        raise_oversell(tx, "oversell", product_id, short, c.origin, p.get("order_id"))

    def _returned_by_other(self, tx: Tx, product_id: str, order_id: str, origin: str) -> bool:
        """Has a node other than ``origin`` already put this order's product back?

        A cancel can happen on several nodes before they hear of each other;
        each returns the stock locally.  Only the first cancellation of an
        (order, product) to reach a node counts there; a node's own lines
        always count together (an order may list a product twice).
        """
        rows = tx.all(
            "SELECT actor FROM stock_movements WHERE order_id = ? AND product_id = ?"
            " AND kind = 'cancellation'",
            (order_id, product_id),
        )
        here = self.shop.config.node_id
        sources = {r["actor"][5:] if str(r["actor"]).startswith("sync:") else here for r in rows}
        return bool(sources - {origin})

    def compensate(
        self, tx: Tx, product_id: str, delta: int, order_id: str | None, note: str,
        site: str | None = None, *, hold: bool = False,
    ) -> None:  # fmt: skip
        """Cloud only: a movement every node (of ``site``) must learn, so it enters the outbox.
        ``hold``: an oversell's hold, whose units are owed (every node counts them so)."""
        self.shop.write_movement(
            tx, product_id, delta, "adjustment", "sync:cloud",
            order_id=order_id, note=note, site=site, allow_short=True,
            owed=delta if hold else 0,
        )  # fmt: skip
        payload = {"product_id": product_id, "delta": delta, "order_id": order_id, "note": note}
        if site is not None:
            payload["site"] = site
        self.shop.record_change(tx, "stock_movement", product_id, "adjustment", payload,
                                site=site)  # fmt: skip

    # ---- orders and requests: upsert, then merge ---------------------------------
    @staticmethod
    def _sale(c: Change) -> bool:
        return c.entity == "stock_movement" and c.op == "sale" and int(c.payload["delta"]) < 0

    def flush(self, tx: Tx) -> None:
        """Write the new orders and the sales waiting in the buffer.  Sales go in together
        when every product has the stock; else one by one, as they came (oversells)."""
        if self.buffer:
            self.shop.insert_remote_orders(tx, self.buffer)
            self.buffer.clear()
        if not self.sales:
            return
        sales, self.sales = self.sales, []
        moves = [(str(c.payload["product_id"]), int(c.payload["delta"]), c.op, f"sync:{c.origin}",
                  c.payload.get("order_id"), c.payload.get("note")) for c in sales]  # fmt: skip
        if not self.shop.write_movements(tx, moves, self._stock_site(tx, sales[0].site)):
            buffer, self.buffer = self.buffer, None
            try:
                for c in sales:
                    self._stock_movement(tx, c)
            finally:
                self.buffer = buffer

    def _order(self, tx: Tx, c: Change) -> None:
        p = c.payload
        absent = c.entity_id in self.absent
        if not absent:
            self.flush(tx)
        row = None if absent else self.shop.remote_order_state(tx, c.entity_id)
        if row is None:
            new = (c.entity_id, p, c.origin, self._record_site(c))
            if absent and self.buffer is not None:
                self.buffer.append(new)
            else:
                self.shop.insert_remote_order(tx, *new)
            self.absent.discard(c.entity_id)
            return
        out = merge.merge_record(merge.ORDER_RANK, row, p, merge.ORDER_SET_ONCE, merge.ORDER_TEXT)
        synced = bool(row["accounting_synced"]) or bool(p.get("accounting_synced"))
        updated_at = max(str(row["updated_at"]), str(p.get("updated_at") or ""))
        self.shop.store_merged_order(tx, c.entity_id, out.values, synced, updated_at)
        for flag in out.flags:
            self._flag(tx, "order", c, str(row["number"]), flag, row["status"], p["status"])
            if flag == "cancelled_vs_completed" and self.role == "cloud":
                self._reverse_cancellation(tx, c.entity_id, str(row["number"]))

    @staticmethod
    def _record_site(c: Change) -> str | None:
        """A site's node's orders are of its site (the cloud's binding decides); else as sent."""
        site = c.site or c.payload.get("site")
        return None if site is None else str(site)

    def _reverse_cancellation(self, tx: Tx, order_id: str, number: str) -> None:
        """The cancel returned stock that was in fact handed over: take it back, once."""
        if has_attention(tx, "cancellation_reversed", order_id):
            return
        items = tx.all(
            "SELECT product_id, quantity FROM order_items WHERE order_id = ? ORDER BY product_id",
            (order_id,),
        )
        site = self.shop.stock_site(tx, tx.scalar("SELECT site FROM orders WHERE id = ?",
                                                  (order_id,)))  # fmt: skip
        for item in items:
            pid, qty = item["product_id"], int(item["quantity"])
            stock = self.shop.stock_of(tx, pid, site)
            take = min(qty, stock)  # units resold since the cancel stay owed: flagged
            note = f"order {number} was picked up although cancelled: cancellation reversed"
            if take:
                self.compensate(tx, pid, -take, order_id, note, site)
            if take < qty:
                raise_attention(
                    tx, "oversell", "product", pid, "cloud",
                    f"order {number}: {qty - take} unit(s) resold after the cancel",
                    {"product_id": pid, "short": qty - take, "order_id": order_id},
                )  # fmt: skip
        raise_attention(
            tx, "cancellation_reversed", "order", order_id, "cloud",
            f"order {number}: stock returned by the cancel was taken back", {},
        )  # fmt: skip

    def _concierge_request(self, tx: Tx, c: Change) -> None:
        p = {**c.payload, "actual_cost": cents(c.payload.get("actual_cost"))}
        absent = c.entity_id in self.absent
        row = None if absent else self.shop.remote_request_state(tx, c.entity_id)
        self.absent.discard(c.entity_id)
        if row is None:
            self.shop.insert_remote_request(tx, c.entity_id, c.payload, c.origin,
                                            self._record_site(c), c.created_at)  # fmt: skip
            return
        out = merge.merge_record(
            merge.REQUEST_RANK, row, p, merge.REQUEST_SET_ONCE, merge.REQUEST_TEXT
        )
        cost = out.values["actual_cost"]
        values = {**out.values, "actual_cost": None if cost is None else int(cost)}
        self.shop.store_merged_request(tx, c.entity_id, values, c.created_at)
        for flag in out.flags:
            self._flag(tx, "concierge_request", c, str(row["number"]), flag, row["status"],
                       p["status"])  # fmt: skip

    @staticmethod
    def _flag(
        tx: Tx, entity: str, c: Change, number: str, flag: str, local: str, remote: str
    ) -> None:
        detail = f"{entity} {number}: {local} here met {remote} from {c.origin}"
        raise_attention(tx, flag, entity, c.entity_id, c.origin, detail,
                        {"local": local, "remote": remote, "number": number})  # fmt: skip

    # ---- attendance (edge -> cloud, never biometric) -----------------------------
    def _attendance(self, tx: Tx, c: Change) -> None:
        if self.role == "edge":
            return
        p = c.payload
        tx.execute(
            "INSERT INTO attendance_events (id, node, member_id, door, direction, at, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            (c.entity_id, c.origin, p["member_id"], p["door"], p["direction"], p["at"],
             tx_stamp()),
        )  # fmt: skip


def tx_stamp() -> str:
    from sync.attention import utc_stamp

    return utc_stamp()
