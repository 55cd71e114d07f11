"""Records another node made, written into this shop's tables without an outbox row.

Sync (``sync/apply.py``) decides *whether* and *what* to write (merge rules,
site checks, oversells); these functions are the only place that writes the
shop's tables for it, so the shop owns every write to its tables (issue 16).
Each runs inside the caller's transaction.  No outbox row: a remote change
must not echo back.  Stock moves through :meth:`CatalogMixin.write_movement`.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from edge.shop.base import ShopBase
from edge.shop.db import Row, Tx
from edge.shop.money import to_cents

ORDER_MERGED = ("status", "payment_ref", "paid_at", "invoice_id", "staff_notes",
                "accounting_error")  # fmt: skip
REQUEST_MERGED = ("status", "actual_cost", "age_verified_at", "age_verified_by", "reviewed_at",
                  "completed_at", "decline_reason", "staff_notes")  # fmt: skip


def cents(value: Any) -> int | None:
    return None if value is None else to_cents(Decimal(str(value)))


class ReplicaMixin(ShopBase):
    # ---- catalogue and members ------------------------------------------------
    @staticmethod
    def store_remote_product(tx: Tx, product_id: str, p: dict[str, Any], at: str) -> None:
        """Upsert a product as the cloud sent it; stock is never copied (it arrives as
        movements)."""
        values = (
            p["slug"], p["name"], p["category"], p["description"], p["short_description"],
            cents(p["price"]), cents(p["member_price"]), p["low_stock_threshold"],
            p["image_url"], json.dumps(list(p["gallery"])), int(p["active"]),
            int(p["featured"]), p["accounting_item_id"],
        )  # fmt: skip
        updated = tx.execute(
            "UPDATE products SET slug = ?, name = ?, category = ?, description = ?,"
            " short_description = ?, price_cents = ?, member_price_cents = ?,"
            " low_stock_threshold = ?, image_url = ?, gallery = ?, active = ?, featured = ?,"
            " accounting_item_id = ?, updated_at = ? WHERE id = ?",
            (*values, at, product_id),
        )
        if updated == 0:
            tx.execute(
                "INSERT INTO products (slug, name, category, description, short_description,"
                " price_cents, member_price_cents, low_stock_threshold, image_url, gallery,"
                " active, featured, accounting_item_id, id, stock, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                (*values, product_id, at, at),
            )

    @staticmethod
    def remote_member_state(tx: Tx, member_id: str) -> Row | None:
        return tx.one("SELECT active FROM members WHERE id = ?", (member_id,))

    @staticmethod
    def store_remote_member(
        tx: Tx, member_id: str, p: dict[str, Any], at: str, *, exists: bool
    ) -> None:
        values = (p["name"], p["email"].lower(), p["phone"], p["date_of_birth"], p["tier"],
                  int(p["active"]))  # fmt: skip
        if not exists:
            tx.execute(
                "INSERT INTO members (name, email, phone, date_of_birth, tier, active, id,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*values, member_id, at, at),
            )
        else:
            tx.execute(
                "UPDATE members SET name = ?, email = ?, phone = ?, date_of_birth = ?, tier = ?,"
                " active = ?, updated_at = ? WHERE id = ?",
                (*values, at, member_id),
            )

    # ---- orders ------------------------------------------------------------------
    @staticmethod
    def remote_order_state(tx: Tx, order_id: str) -> Row | None:
        """What the merge rules compare (None: this node does not have the order)."""
        return tx.one(
            "SELECT status, payment_ref, paid_at, invoice_id, staff_notes, accounting_error,"
            " accounting_synced, updated_at, number FROM orders WHERE id = ?",
            (order_id,),
        )

    @classmethod
    def insert_remote_order(
        cls, tx: Tx, order_id: str, p: dict[str, Any], origin: str, site: str | None
    ) -> None:
        """The order and its items as the origin node recorded them (totals included)."""
        cls.insert_remote_orders(tx, [(order_id, p, origin, site)])

    @staticmethod
    def insert_remote_orders(
        tx: Tx, orders: list[tuple[str, dict[str, Any], str, str | None]]
    ) -> None:
        """Several such orders and all their items: one statement on PostgreSQL (a push
        batch applies hundreds)."""
        if not orders:
            return
        rows = [(order_id, p["number"], p["member_id"], p["status"], p["pickup_date"],
                 p["booking_ref"], cents(p["subtotal"]), cents(p["tax"]), cents(p["total"]),
                 str(p["tax_rate"]), p["payment_ref"], p["paid_at"], p["customer_notes"],
                 p["staff_notes"], int(bool(p["accounting_synced"])), p["invoice_id"],
                 p["accounting_error"], origin, p["created_at"], p["updated_at"], site)
                for order_id, p, origin, site in orders]  # fmt: skip
        items = [(f"{order_id}-{position}", order_id, position, item["product_id"],
                  item["product_name"], int(item["quantity"]), cents(item["unit_price"]),
                  cents(item["line_total"]), item["note"])
                 for order_id, p, _, _ in orders
                 for position, item in enumerate(p["items"])]  # fmt: skip
        statements = [tx.insert_statement(
            "orders", "id, number, member_id, status, pickup_date, booking_ref, subtotal_cents,"
            " tax_cents, total_cents, tax_rate, payment_ref, paid_at, customer_notes, staff_notes,"
            " accounting_synced, invoice_id, accounting_error, origin_node, created_at,"
            " updated_at, site",
            "text, text, text, text, text, text, bigint, bigint, bigint, text, text, text, text,"
            " text, integer, text, text, text, text, text, text", rows,
        )]  # fmt: skip
        if items:
            statements.append(tx.insert_statement(
                "order_items", "id, order_id, position, product_id, product_name, quantity,"
                " unit_price_cents, line_total_cents, note",
                "text, text, integer, text, text, integer, bigint, bigint, text", items,
            ))  # fmt: skip
        tx.execute_all(statements)

    @staticmethod
    def store_merged_order(
        tx: Tx, order_id: str, values: dict[str, Any], synced: bool, updated_at: str
    ) -> None:
        """Write the merge result (``ORDER_MERGED`` fields) of a remote change."""
        tx.execute(
            "UPDATE orders SET status = ?, payment_ref = ?, paid_at = ?, invoice_id = ?,"
            " staff_notes = ?, accounting_error = ?, accounting_synced = ?, updated_at = ?"
            " WHERE id = ?",
            (*(values[k] for k in ORDER_MERGED), int(synced), updated_at, order_id),
        )

    # ---- concierge requests ---------------------------------------------------------
    @staticmethod
    def remote_request_state(tx: Tx, request_id: str) -> Row | None:
        return tx.one(
            "SELECT status, actual_cost_cents AS actual_cost, age_verified_at, age_verified_by,"
            " reviewed_at, completed_at, decline_reason, staff_notes, number"
            " FROM concierge_requests WHERE id = ?",
            (request_id,),
        )

    @staticmethod
    def insert_remote_request(
        tx: Tx, request_id: str, p: dict[str, Any], origin: str, site: str | None, at: str
    ) -> None:
        tx.execute(
            "INSERT INTO concierge_requests (id, number, member_id, request_type, title,"
            " description, product_link, budget_min_cents, budget_max_cents, actual_cost_cents,"
            " preferred_pickup_date, booking_ref, status, decline_reason, staff_notes,"
            " age_verified_at, age_verified_by, submitted_at, reviewed_at, completed_at,"
            " updated_at, origin_node, site)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (request_id, p["number"], p["member_id"], p["request_type"], p["title"],
             p["description"], p["product_link"], cents(p["budget_min"]),
             cents(p["budget_max"]), cents(p["actual_cost"]), p["preferred_pickup_date"],
             p["booking_ref"], p["status"], p["decline_reason"], p["staff_notes"],
             p["age_verified_at"], p["age_verified_by"], p["submitted_at"], p["reviewed_at"],
             p["completed_at"], at, origin, site),
        )  # fmt: skip

    @staticmethod
    def store_merged_request(tx: Tx, request_id: str, values: dict[str, Any], at: str) -> None:
        """Write the merge result (``REQUEST_MERGED`` fields; cost in cents)."""
        tx.execute(
            "UPDATE concierge_requests SET status = ?, actual_cost_cents = ?,"
            " age_verified_at = ?, age_verified_by = ?, reviewed_at = ?, completed_at = ?,"
            " decline_reason = ?, staff_notes = ?, updated_at = ? WHERE id = ?",
            (*(values[k] for k in REQUEST_MERGED), at, request_id),
        )
