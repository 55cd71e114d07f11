"""Group commit: concurrent pickup orders of a cloud worker written together.

The cloud collects the orders that arrive while its previous batch is in
flight (``cloud_api.batching``; no added wait) and hands them here as one
list.  On PostgreSQL with a worker's number reserve they are written in ONE
transaction of a fixed number of round trips, whatever their number:

1. BEGIN; their members and products, each one query;
2. the stock rows they move, locked (``FOR UPDATE``) in (product, site) order,
   the order single orders lock them in, with what is really there
   (``stock - owed``);
3. each order judged in arrival order against what the orders before it left,
   exactly as ``create_order`` judges it alone (site, pickup date, member,
   products, number, stock lines in product-id order);
4. one statement writing every row of the orders that fit: the stock moves,
   ledger rows, orders, lines and outbox rows; COMMIT.

Each order keeps its own outcome: one refused (stock, validation) refuses
only itself.  If the batch's statements fail (a deadlock, a constraint),
nothing was committed and every order is tried again alone.  If COMMIT
itself fails, none of the batch is acknowledged (a 503; the client retries).
Anywhere else (SQLite, an edge) orders are simply created one by one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from edge.shop.base import Change, SiteRules, new_id
from edge.shop.db import Params, Tx
from edge.shop.errors import NotFound, OutOfStock, ShopError, StorageFailure, ValidationFailed
from edge.shop.inputs import OrderInput
from edge.shop.members import _COLUMNS as MEMBER_COLUMNS
from edge.shop.money import to_cents
from edge.shop.orders import _ORDER_COLUMNS, ORDER_FIELDS, Line, OrdersMixin
from edge.shop.records import Member, Order, Product
from edge.shop.stock import _COLUMNS as PRODUCT_COLUMNS
from edge.shop.stock import SELLABLE

log = logging.getLogger(__name__)

# One order to create: member id, the order, the actor (None: the member).
OrderRequest = tuple[str, OrderInput | dict[str, Any], str | None]
# What became of it: the order as written, or why not.
Outcome = Order | Exception
StockKey = tuple[str, str | None]  # product id, site (None: products.stock)

_ORDER_TYPES = ("text, text, text, text, text, text, bigint, bigint, bigint, text, text, text,"
                " text, text, integer, text, text, text, text, text, text")  # fmt: skip
_ITEM_COLUMNS = ("id, order_id, position, product_id, product_name, quantity,"
                 " unit_price_cents, line_total_cents, note")  # fmt: skip
_ITEM_TYPES = "text, text, integer, text, text, integer, bigint, bigint, text"
_LEDGER_COLUMNS = "product_id, kind, delta, order_id, actor, note, created_at, site"
_LEDGER_TYPES = "text, text, integer, text, text, text, text, text"
_OUTBOX_COLUMNS = "entity, entity_id, op, payload, node, created_at, site"


class BatchOrdersMixin(OrdersMixin):
    def create_orders(self, requests: Sequence[OrderRequest]) -> list[Outcome]:
        """``create_order`` for each request, in one transaction where that is possible."""
        if len(requests) < 2 or self.numbers is None or self.db.dialect != "postgres":
            return self._one_by_one(requests)
        outcomes: list[Outcome | None] = [None] * len(requests)
        written: list[int] = []
        committing = False
        try:
            with self.db.write() as tx:
                written = self._write_batch(tx, requests, outcomes)
                committing = True  # the statements ran: what fails now is the COMMIT
        except Exception as exc:
            if not committing:  # rolled back: nothing of the batch was stored
                if not _alone_may_help(exc):
                    return [exc] * len(requests)
                log.warning("order batch of %d failed (%s): each order alone", len(requests), exc)
                return self._one_by_one(requests)
            failure = exc if isinstance(exc, ShopError) else StorageFailure(str(exc))
            for k in written:  # not acknowledged: none of them may count as stored
                outcomes[k] = failure
        return [o if o is not None else StorageFailure("order not judged") for o in outcomes]

    def _one_by_one(self, requests: Sequence[OrderRequest]) -> list[Outcome]:
        out: list[Outcome] = []
        for member_id, data, actor in requests:
            try:
                out.append(self.create_order(member_id, data, actor=actor))
            except Exception as exc:  # each order its own outcome
                out.append(exc)
        return out

    def _write_batch(
        self, tx: Tx, requests: Sequence[OrderRequest], outcomes: list[Outcome | None]
    ) -> list[int]:
        """Judge every request (refusals go to ``outcomes``), write those that fit in one
        statement; returns the indexes written (their orders are in ``outcomes``)."""
        drafts = self._judge(tx, requests, outcomes)
        keys = {(p.id, at) for _, _, _, _, at, lines in drafts for _, p, _, _, _ in lines}
        have = self._lock_stock(tx, keys)
        moves: dict[StockKey, int] = {}
        ledger: list[tuple[Any, ...]] = []
        orders: list[tuple[Any, ...]] = []
        items: list[tuple[Any, ...]] = []
        outbox: list[Change] = []
        written: list[int] = []
        for k, member, order, site, at, lines in drafts:
            actor = requests[k][2] or member.id
            try:
                number = self.next_number(tx, "PO", self.today_at(site).year)
                for i, product, qty, _, _ in sorted(lines, key=lambda line: line[1].id):
                    left = have.get((product.id, at), 0) - moves.get((product.id, at), 0)
                    if qty > left:
                        short = OutOfStock(product.slug, max(left, 0), qty)
                        short.field = f"items[{i}].quantity"
                        raise short
            except ShopError as exc:
                outcomes[k] = exc
                continue
            oid, now = new_id(), self.stamp()
            insert_order, result = self._draft(oid, number, member.id, order, site, lines, now)
            orders.append(tuple(insert_order[1]))
            for i, product, qty, unit, note in lines:
                items.append((new_id(), oid, i, product.id, product.name, qty, to_cents(unit),
                              to_cents(unit * qty), note))  # fmt: skip
            for _, product, qty, _, _ in sorted(lines, key=lambda line: line[1].id):
                moves[(product.id, at)] = moves.get((product.id, at), 0) + qty
                ledger.append((product.id, "sale", -qty, oid, actor, None, now, at))
                payload = {"product_id": product.id, "delta": -qty, "order_id": oid,
                           "note": None}  # fmt: skip
                if at is not None:
                    payload["site"] = at
                outbox.append(("stock_movement", product.id, "sale", payload, at))
            outbox.append(("order", oid, "create", result.to_json(), result.site))
            outcomes[k] = result
            written.append(k)
        if written:
            tx.execute_all(self._batch_statements(tx, moves, ledger, orders, items, outbox))
        return written

    def _judge(
        self, tx: Tx, requests: Sequence[OrderRequest], outcomes: list[Outcome | None]
    ) -> list[tuple[int, Member, OrderInput, SiteRules, str | None, list[Line]]]:
        """What ``create_order`` checks before the stock, for every request at once."""
        rules: dict[str | None, SiteRules | ShopError] = {}
        firsts: list[tuple[int, OrderInput, SiteRules]] = []
        for k, (_, data, _) in enumerate(requests):
            try:
                order = self._input(OrderInput, data)
                if order.site not in rules:
                    try:
                        rules[order.site] = self.site_rules(tx, order.site)
                    except ShopError as exc:
                        rules[order.site] = exc
                site = rules[order.site]
                if isinstance(site, ShopError):
                    raise site
                if order.pickup_date is not None and order.pickup_date < self.today_at(site):
                    raise ValidationFailed("pickup_date", "must not be in the past")
                firsts.append((k, order, site))
            except ShopError as exc:
                outcomes[k] = exc
        member_ids = sorted({requests[k][0] for k, _, _ in firsts})
        members = {r["id"]: Member.from_row(r) for r in tx.all(
            f"SELECT {MEMBER_COLUMNS} FROM members WHERE id = ANY(%b)", (member_ids,))}  # fmt: skip
        slugs = sorted({item.product for _, order, _ in firsts for item in order.items})
        products = {r["slug"]: Product.from_row(r) for r in tx.all(
            f"SELECT {PRODUCT_COLUMNS} FROM products WHERE slug = ANY(%b)", (slugs,))}  # fmt: skip
        drafts = []
        for k, order, site in firsts:
            try:
                member = members.get(requests[k][0])
                if member is None:
                    raise NotFound("member", requests[k][0])
                lines: list[Line] = []
                for i, item in enumerate(order.items):
                    product = products.get(item.product)
                    if product is None or not product.active:
                        raise ValidationFailed(
                            f"items[{i}].product", f"no such product {item.product!r}"
                        )
                    lines.append((i, product, item.quantity, product.price_for(member.active),
                                  item.note))  # fmt: skip
            except ShopError as exc:
                outcomes[k] = exc
                continue
            drafts.append((k, member, order, site, site.id if site.own_stock else None, lines))
        return drafts

    @staticmethod
    def _lock_stock(tx: Tx, keys: set[StockKey]) -> dict[StockKey, int]:
        """Lock the stock rows ``keys`` name, in (product, site) order; what is really
        there in each (a site without a row of the product has none)."""
        have: dict[StockKey, int] = {}
        chain = sorted(pid for pid, at in keys if at is None)
        if chain:
            for r in tx.all(
                f"SELECT id, {SELLABLE.format(t='')} AS n FROM products WHERE id = ANY(%b)"
                " ORDER BY id FOR UPDATE",
                (chain,),
            ):
                have[(r["id"], None)] = int(r["n"])
        sited = sorted((pid, at) for pid, at in keys if at is not None)
        if sited:
            for r in tx.all(
                f"SELECT product_id, site, {SELLABLE.format(t='')} AS n FROM site_stock"
                " WHERE (product_id, site) IN (SELECT * FROM unnest(%b::text[], %b::text[]))"
                " ORDER BY product_id, site FOR UPDATE",
                ([pid for pid, _ in sited], [at for _, at in sited]),
            ):
                have[(r["product_id"], r["site"])] = int(r["n"])
        return have

    def _batch_statements(
        self, tx: Tx, moves: dict[StockKey, int], ledger: list[tuple[Any, ...]],
        orders: list[tuple[Any, ...]], items: list[tuple[Any, ...]], outbox: list[Change],
    ) -> list[tuple[str, Params]]:  # fmt: skip
        """The batch's writes (``Tx.execute_all`` makes them one statement): each stock
        row moved once by its total, then ledger rows, orders, lines, outbox rows."""
        out: list[tuple[str, Params]] = []
        chain = sorted((pid, n) for (pid, at), n in moves.items() if at is None)
        if chain:
            out.append((
                "UPDATE products s SET stock = s.stock - d.n, updated_at = ?"
                " FROM unnest(%b::text[], %b::integer[]) AS d (id, n) WHERE s.id = d.id",
                (self.stamp(), [p for p, _ in chain], [n for _, n in chain]),
            ))  # fmt: skip
        sited = sorted((pid, at, n) for (pid, at), n in moves.items() if at is not None)
        if sited:
            out.append((
                "UPDATE site_stock s SET stock = s.stock - d.n"
                " FROM unnest(%b::text[], %b::text[], %b::integer[]) AS d (product_id, site, n)"
                " WHERE s.product_id = d.product_id AND s.site = d.site",
                ([p for p, _, _ in sited], [a for _, a, _ in sited], [n for *_, n in sited]),
            ))  # fmt: skip
        out.append(tx.insert_statement("stock_movements", _LEDGER_COLUMNS, _LEDGER_TYPES, ledger))
        out.append(tx.insert_statement("orders", f"{_ORDER_COLUMNS}, origin_node", _ORDER_TYPES,
                                       orders))  # fmt: skip
        out.append(tx.insert_statement("order_items", _ITEM_COLUMNS, _ITEM_TYPES, items))
        _, params = self._outbox_insert(outbox)
        rows = [params[i : i + 7] for i in range(0, len(params), 7)]
        out.append(tx.insert_statement("outbox", _OUTBOX_COLUMNS, ", ".join(["text"] * 7), rows))
        return out


def _alone_may_help(exc: Exception) -> bool:
    """Would the batch's orders fare better one by one?  Not when the database is away
    (no connection, pool timeout): each would wait and fail the same way."""
    import psycopg

    cause = exc.__cause__ if isinstance(exc, StorageFailure) else exc
    if isinstance(cause, (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)):
        return True  # a deadlock or serialization failure: alone, they lock less
    if isinstance(cause, psycopg.OperationalError):
        return False  # no connection, pool timeout: the database is away
    return not (isinstance(exc, StorageFailure) and cause is None)  # e.g. "database is closed"


assert len(ORDER_FIELDS) + 1 == len(_ORDER_TYPES.split(","))
