"""Pickup orders: created in one transaction, priced exactly, cancelled via the ledger."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from edge.shop.base import Change, ShopBase, SiteRules, new_id, where_equal
from edge.shop.catalog import CatalogMixin
from edge.shop.db import Tx
from edge.shop.errors import Conflict, InvalidTransition, NotFound, OutOfStock, ValidationFailed
from edge.shop.inputs import OrderInput, OrderStatusInput, PaymentInput
from edge.shop.members import MembersMixin
from edge.shop.money import order_totals, to_cents
from edge.shop.records import Order, Page, Product
from edge.shop.statuses import ORDER_CANCELLABLE, ORDER_PREVIOUS, OrderStatus, sql_list

_ORDER_COLUMNS = (
    "id, number, member_id, status, pickup_date, booking_ref, subtotal_cents, tax_cents,"
    " total_cents, tax_rate, payment_ref, paid_at, customer_notes, staff_notes,"
    " accounting_synced, invoice_id, accounting_error, created_at, updated_at, site"
)
ORDER_FIELDS = [c.strip() for c in _ORDER_COLUMNS.split(",")]
# A line of a new order: position, product, quantity, unit price, note.
Line = tuple[int, Product, int, Decimal, str | None]


class OrdersMixin(CatalogMixin, MembersMixin, ShopBase):
    def create_order(
        self, member_id: str, data: OrderInput | dict[str, Any], *, actor: str | None = None
    ) -> Order:
        """All of it or none of it: number, order row, items, stock and ledger rows."""
        order = self._input(OrderInput, data)
        oid, now = new_id(), self.stamp()
        # A cloud worker's one-line order is one statement (its number is not in the
        # database): no transaction round trips (``_write_at_once``).
        at_once = len(order.items) == 1 and self.numbers is not None
        at_once = at_once and self.db.dialect == "postgres"
        with self.db.autocommit() if at_once else self.db.write() as tx:
            site = self.site_rules(tx, order.site)
            today = self.today_at(site)
            at = site.id if site.own_stock else None  # the site's stock row, or products.stock
            if order.pickup_date is not None and order.pickup_date < today:
                raise ValidationFailed("pickup_date", "must not be in the past")
            member = self._member(tx, member_id)
            lines: list[Line] = []
            for i, item in enumerate(order.items):
                try:
                    product: Product | None = self._product_by(tx, "slug", item.product)
                except NotFound:
                    product = None
                if product is None or not product.active:
                    raise ValidationFailed(
                        f"items[{i}].product", f"no such product {item.product!r}"
                    )
                unit = product.price_for(member.active)
                lines.append((i, product, item.quantity, unit, item.note))
            number = self.next_number(tx, "PO", today.year)
            insert_order, result = self._draft(oid, number, member.id, order, site, lines, now)
            if at_once:
                self._write_at_once(tx, insert_order, lines[0], result, at, actor or member.id)
                return result
            # Lock products in id order so concurrent orders cannot deadlock.
            changes: list[Change] = []
            for i, product, qty, _, _ in sorted(lines, key=lambda line: line[1].id):
                try:
                    self._move_stock(tx, product.id, -qty, "sale", actor or member.id,
                                     order_id=oid, site=at, changes=changes)  # fmt: skip
                except OutOfStock as exc:
                    exc.field = f"items[{i}].quantity"
                    raise
            changes.append(("order", oid, "create", result.to_json(), result.site))
            # The order, its lines, and the outbox rows of its stock moves and itself:
            # one statement on PostgreSQL.
            tx.execute_all([insert_order, self._items_insert(oid, lines),
                            self._outbox_insert(changes)])  # fmt: skip
        return result

    def _draft(
        self, oid: str, number: str, member_id: str, order: OrderInput, site: SiteRules,
        lines: list[Line], now: str,
    ) -> tuple[tuple[str, tuple[Any, ...]], Order]:  # fmt: skip
        """A new order's row (its INSERT) and the order as written (no read-back: two
        round trips fewer per order)."""
        subtotal, tax, _ = order_totals(((unit, qty) for _, _, qty, unit, _ in lines),
                                        site.tax_rate)  # fmt: skip
        row = {
            "id": oid, "number": number, "member_id": member_id,
            "status": OrderStatus.PENDING.value,
            "pickup_date": None if order.pickup_date is None else order.pickup_date.isoformat(),
            "booking_ref": order.booking_ref, "subtotal_cents": to_cents(subtotal),
            "tax_cents": to_cents(tax), "total_cents": to_cents(subtotal + tax),
            "tax_rate": str(site.tax_rate), "payment_ref": None, "paid_at": None,
            "customer_notes": order.customer_notes, "staff_notes": "",
            "accounting_synced": 0, "invoice_id": None, "accounting_error": None,
            "created_at": now, "updated_at": now, "site": site.id,
        }  # fmt: skip
        marks = ", ".join("?" for _ in ORDER_FIELDS)
        insert_order = (
            f"INSERT INTO orders ({_ORDER_COLUMNS}, origin_node) VALUES ({marks}, ?)",
            (*(row[n] for n in ORDER_FIELDS), self.config.node_id),
        )
        items = [{"product_id": product.id, "product_name": product.name, "quantity": qty,
                  "unit_price_cents": to_cents(unit), "line_total_cents": to_cents(unit * qty),
                  "note": note} for _, product, qty, unit, note in lines]  # fmt: skip
        return insert_order, Order.from_row(row, items)

    def _write_at_once(
        self, tx: Tx, insert_order: tuple[str, tuple[Any, ...]],
        line: Line, order: Order, at: str | None,
        actor: str,
    ) -> None:  # fmt: skip
        """PostgreSQL, one line: the stock move (guarded), its ledger row, the order, its
        line and both outbox rows in one statement, each write only if the stock moved."""
        _, product, qty, _, _ = line
        movement = {"product_id": product.id, "delta": -qty, "order_id": order.id, "note": None}
        if at is not None:
            movement["site"] = at
        target = ("products SET stock = stock + ?, updated_at = ? WHERE id = ?",
                  (-qty, self.stamp(), product.id)) if at is None else (
                  "site_stock SET stock = stock + ? WHERE site = ? AND product_id = ?",
                  (-qty, at, product.id))  # fmt: skip
        ledger = (product.id, "sale", -qty, order.id, actor, None, self.stamp(), at)
        items_sql, items = self._items_insert(order.id, [line])
        outbox_sql, outbox = self._outbox_insert(
            [("stock_movement", product.id, "sale", movement, at),
             ("order", order.id, "create", order.to_json(), order.site)])  # fmt: skip
        sql = (
            # a sale takes only what is really there: stock less what is owed
            f"WITH moved AS (UPDATE {target[0]} AND stock - owed + ? >= 0 RETURNING 1 AS x),"
            " m AS (INSERT INTO stock_movements (product_id, kind, delta, order_id, actor, note,"
            " created_at, site) SELECT ?, ?, ?, ?, ?, ?, ?, ? FROM moved),"
            f" o AS ({insert_order[0].replace(' VALUES (', ' SELECT ', 1)[:-1]} FROM moved),"
            f" i AS ({items_sql.replace(' VALUES (', ' SELECT ', 1)[:-1]} FROM moved)"
            f" {outbox_sql.replace(' VALUES ', ' SELECT v.* FROM moved, (VALUES ', 1)}) AS v"
        )
        params = [*target[1], -qty, *ledger, *insert_order[1], *items, *outbox]
        if tx.execute(sql, params) == 0:
            short = OutOfStock(product.slug, self.sellable_of(tx, product.id, at), qty)
            short.field = "items[0].quantity"
            raise short

    @staticmethod
    def _items_insert(order_id: str, lines: list[Line]) -> tuple[str, list[Any]]:
        """Every line of a new order in one statement."""
        rows = [(new_id(), order_id, position, product.id, product.name, qty, to_cents(unit),
                 to_cents(unit * qty), note)
                for position, product, qty, unit, note in lines]  # fmt: skip
        return (
            "INSERT INTO order_items (id, order_id, position, product_id, product_name, quantity,"
            " unit_price_cents, line_total_cents, note) VALUES "
            + ", ".join("(?, ?, ?, ?, ?, ?, ?, ?, ?)" for _ in rows),
            [v for row in rows for v in row],
        )

    def get_order(
        self, order_id: str, *, member_id: str | None = None, site: str | None = None
    ) -> Order:
        """``member_id`` / ``site`` restrict to that member's / site's orders (others look
        absent)."""
        with self.db.read() as tx:
            order = self._order(tx, order_id)
        if (member_id is not None and order.member_id != member_id) or (
            site is not None and order.site != site
        ):
            raise NotFound("order", order_id)
        return order

    def list_orders(
        self,
        *,
        member_id: str | None = None,
        status: str | None = None,
        site: str | None = None,
        page: int = 1,
        page_size: int = 20,
    ) -> Page[Order]:
        """``site`` keeps to one site's orders (site-bound staff)."""
        clause, params = where_equal(member_id=member_id, status=status, site=site)
        with self.db.read() as tx:
            total = int(tx.scalar(f"SELECT COUNT(*) AS n FROM orders{clause}", params))
            rows = tx.all(
                f"SELECT id FROM orders{clause} ORDER BY created_at DESC, number DESC"
                " LIMIT ? OFFSET ?",
                [*params, page_size, (page - 1) * page_size],
            )
            orders = tuple(self._order(tx, r["id"]) for r in rows)
        return Page(orders, total, page, page_size)

    def cancel_order(
        self, order_id: str, *, member_id: str | None = None, actor: str = "system"
    ) -> Order:
        """Only while pending or processing; every item's stock comes back as ledger rows."""
        with self.db.write() as tx:
            order = self._order(tx, order_id)
            if member_id is not None and order.member_id != member_id:
                raise NotFound("order", order_id)
            changed = tx.execute(
                f"UPDATE orders SET status = '{OrderStatus.CANCELLED}', updated_at = ?"
                f" WHERE id = ? AND status IN ({sql_list(ORDER_CANCELLABLE)})",
                (self.stamp(), order_id),
            )
            if changed != 1:
                raise InvalidTransition(
                    f"order {order.number}", order.status, OrderStatus.CANCELLED
                )
            # Idempotent per order: stock another node's cancel already returned
            # here (it can arrive before that node's status change) stays put.
            returned = {r["product_id"] for r in tx.all(
                "SELECT product_id FROM stock_movements WHERE order_id = ?"
                " AND kind = 'cancellation'",
                (order_id,),
            )}  # fmt: skip
            at = self.stock_site(tx, order.site)
            for item in sorted(order.items, key=lambda it: it.product_id):
                if item.product_id in returned:
                    continue
                self._move_stock(tx, item.product_id, item.quantity, "cancellation", actor,
                                 order_id=order_id, site=at)  # fmt: skip
            result = self._order(tx, order_id)
            self.record_change(tx, "order", order_id, "cancel", result.to_json(), site=result.site)
        return result

    def set_order_status(
        self, order_id: str, data: OrderStatusInput | dict[str, Any], *, actor: str = "system"
    ) -> Order:
        s = self._input(OrderStatusInput, data)
        with self.db.write() as tx:
            order = self._order(tx, order_id)
            changed = tx.execute(
                "UPDATE orders SET status = ?, staff_notes = COALESCE(?, staff_notes),"
                " updated_at = ? WHERE id = ? AND status = ?",
                (s.status, s.staff_notes, self.stamp(), order_id, ORDER_PREVIOUS[s.status]),
            )
            if changed != 1:
                raise InvalidTransition(f"order {order.number}", order.status, s.status)
            result = self._order(tx, order_id)
            self.record_change(tx, "order", order_id, "status", result.to_json(), site=result.site)
        return result

    def record_payment(self, order_id: str, data: PaymentInput | dict[str, Any]) -> Order:
        p = self._input(PaymentInput, data)
        with self.db.write() as tx:
            changed = tx.execute(
                "UPDATE orders SET payment_ref = ?, paid_at = ?, updated_at = ?"
                f" WHERE id = ? AND paid_at IS NULL AND status <> '{OrderStatus.CANCELLED}'",
                (p.payment_ref, self.stamp(), self.stamp(), order_id),
            )
            if changed != 1:
                self._order(tx, order_id)
                raise Conflict("order is already paid or cancelled", field="payment_ref")
            result = self._order(tx, order_id)
            self.record_change(tx, "order", order_id, "payment", result.to_json(), site=result.site)
        return result

    def record_accounting(
        self, order_id: str, *, invoice_id: str | None = None, error: str | None = None
    ) -> Order:
        """Outcome of pushing the order to accounting: an invoice id, or the error."""
        with self.db.write() as tx:
            self._order(tx, order_id)
            tx.execute(
                "UPDATE orders SET accounting_synced = ?, invoice_id = COALESCE(?, invoice_id),"
                " accounting_error = ?, updated_at = ? WHERE id = ?",
                (int(error is None), invoice_id, error, self.stamp(), order_id),
            )
            result = self._order(tx, order_id)
            self.record_change(
                tx, "order", order_id, "accounting", result.to_json(), site=result.site
            )
        return result

    @staticmethod
    def _order(tx: Tx, order_id: str) -> Order:
        row = tx.one(f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = ?", (order_id,))
        if row is None:
            raise NotFound("order", order_id)
        items = tx.all(
            "SELECT product_id, product_name, quantity, unit_price_cents, line_total_cents, note"
            " FROM order_items WHERE order_id = ? ORDER BY position",
            (order_id,),
        )
        return Order.from_row(row, items)
