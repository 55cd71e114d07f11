"""The stock ledger: every movement of a product's stock, and product reads
at a site.

Stock is the sum of ``stock_movements``; ``products.stock`` is a cache
updated in the same transaction as each movement row, guarded by
``CHECK (stock >= 0)`` and by the conditional update in :meth:`_move_stock`.
``owed`` counts units sold elsewhere that the ledger holds back from zero
(an oversell's hold, docs/sync.md): what is shown and sold is
``stock - owed``, never below zero.
"""

from __future__ import annotations

from typing import Any

from edge.shop.base import Change, ShopBase
from edge.shop.db import Tx
from edge.shop.errors import NotFound, OutOfStock, ValidationFailed
from edge.shop.inputs import AdjustInput, RestockInput
from edge.shop.records import Product

# What is really there: the ledger less what is owed, never below zero.
SELLABLE = "CASE WHEN {t}stock > {t}owed THEN {t}stock - {t}owed ELSE 0 END"
# A stock movement to write: product id, delta, kind, actor, order id, note.
Move = tuple[str, int, str, str, str | None, str | None]

_STORED = (
    "id, slug, name, category, description, short_description, price_cents,"
    " member_price_cents, stock, low_stock_threshold, image_url, gallery, active, featured,"
    " accounting_item_id"
)
_COLUMNS = _STORED.replace(" stock,", f" {SELLABLE.format(t='')} AS stock,")


def _columns_at(site: str | None) -> tuple[str, tuple[Any, ...]]:
    """The product columns, with ``stock`` read from ``site``'s row when one is given."""
    if site is None:
        return _COLUMNS, ()
    at = (f"(SELECT COALESCE(MAX({SELLABLE.format(t='s.')}), 0) FROM site_stock s"
          " WHERE s.site = ? AND s.product_id = products.id)")  # fmt: skip
    return _COLUMNS.replace(f" {SELLABLE.format(t='')} AS", f" {at} AS"), (site,)


class StockMixin(ShopBase):
    def _product_by(
        self, tx: Tx, column: str, value: str, *, lock: bool = False, site: str | None = None
    ) -> Product:
        columns, params = _columns_at(site)
        row = tx.one(
            f"SELECT {columns} FROM products WHERE {column} = ?" + (tx.for_update if lock else ""),
            (*params, value),
        )
        if row is None:
            raise NotFound("product", value)
        return Product.from_row(row)

    # ---- stock ledger -----------------------------------------------------
    def restock(
        self, slug: str, data: RestockInput | dict[str, Any], *, actor: str = "system"
    ) -> Product:
        r = self._input(RestockInput, data)
        return self._stock_change(slug, r.quantity, "restock", actor, r.note, r.site)

    def adjust_stock(
        self, slug: str, data: AdjustInput | dict[str, Any], *, actor: str = "system"
    ) -> Product:
        a = self._input(AdjustInput, data)
        return self._stock_change(slug, a.delta, "adjustment", actor, a.reason, a.site)

    def substitute(
        self, short_slug: str, given_slug: str, units: int, *, actor: str, note: str
    ) -> None:
        """An oversold product's units were given as another product: one
        transaction moves the given product down (refused if it has not got
        them) and gives the short one its units back, each with a ledger row."""
        with self.db.write() as tx:
            at = self.stock_site(tx, self.site_rules(tx, None).id)
            short = self._product_by(tx, "slug", short_slug)
            try:
                given = self._product_by(tx, "slug", given_slug)
            except NotFound:
                raise ValidationFailed("substitute_slug", f"no product {given_slug!r}") from None
            if given.id == short.id:
                raise ValidationFailed("substitute_slug", "name another product than the short one")
            self._move_stock(tx, given.id, -units, "adjustment", actor, note=note, site=at)
            self._move_stock(tx, short.id, units, "adjustment", actor, note=note, site=at)

    def _stock_change(
        self, slug: str, delta: int, kind: str, actor: str, note: str | None, site: str | None
    ) -> Product:
        with self.db.write() as tx:
            at = self.stock_site(tx, self.site_rules(tx, site).id)
            product = self._product_by(tx, "slug", slug)
            self._move_stock(tx, product.id, delta, kind, actor, note=note, site=at)
            return self._product_by(tx, "id", product.id, site=at)

    def _move_stock(
        self,
        tx: Tx,
        product_id: str,
        delta: int,
        kind: str,
        actor: str,
        *,
        order_id: str | None = None,
        note: str | None = None,
        site: str | None = None,
        changes: list[Change] | None = None,
    ) -> None:
        """Write one ledger row and move the cached stock; refuse to take more than is
        really there (``stock - owed``).  ``changes``: add the outbox entry there (the
        caller writes them together)."""
        if not self.write_movement(tx, product_id, delta, kind, actor, order_id=order_id,
                                   note=note, site=site, sellable=True):  # fmt: skip
            row = tx.one("SELECT slug FROM products WHERE id = ?", (product_id,))
            if row is None:
                raise NotFound("product", product_id)
            raise OutOfStock(row["slug"], self.sellable_of(tx, product_id, site), -delta)
        payload = {"product_id": product_id, "delta": delta, "order_id": order_id, "note": note}
        if site is not None:
            payload["site"] = site
        if changes is not None:
            changes.append(("stock_movement", product_id, kind, payload, site))
        else:
            self.record_change(tx, "stock_movement", product_id, kind, payload, site=site)

    def write_movements(self, tx: Tx, moves: list[Move], site: str | None = None) -> bool:
        """Several sales (negative deltas) of one stock, all or none, in two statements
        (PostgreSQL; a push batch carries hundreds).  False, with nothing written, when
        one product would go short or has no stock row, and always on SQLite: the
        caller then writes them one by one (``write_movement``)."""
        if tx.dialect != "postgres" or not moves or any(m[1] >= 0 for m in moves):
            return False
        totals: dict[str, int] = {}
        for product_id, delta, *_ in moves:
            totals[product_id] = totals.get(product_id, 0) + delta
        ids = sorted(totals)
        marks = ", ".join("?" for _ in ids)
        where = ("products WHERE id", ()) if site is None else (
            "site_stock WHERE site = ? AND product_id", (site,))  # fmt: skip
        key = "id" if site is None else "product_id"
        # Locked in id order (as orders lock them), read, then written knowing they fit.
        have = {str(r["k"]): int(r["stock"]) for r in tx.all(
            f"SELECT {key} AS k, stock FROM {where[0]} IN ({marks}) ORDER BY {key} FOR UPDATE",
            (*where[1], *ids),
        )}  # fmt: skip
        if any(have.get(pid, -1) + total < 0 for pid, total in totals.items()):
            return False
        values = ", ".join("(?, ?::integer)" for _ in ids)
        target = ("products s SET stock = s.stock + d.delta, updated_at = ? FROM d"
                  " WHERE s.id = d.product_id", (self.stamp(),)) if site is None else (
                  "site_stock s SET stock = s.stock + d.delta FROM d WHERE s.site = ?"
                  " AND s.product_id = d.product_id", (site,))  # fmt: skip
        stamp = self.stamp()
        rows = [(pid, kind, delta, order_id, actor, note, stamp, site)
                for pid, delta, kind, actor, order_id, note in moves]  # fmt: skip
        ledger, params = tx.insert_statement(
            "stock_movements", "product_id, kind, delta, order_id, actor, note, created_at, site",
            "text, text, integer, text, text, text, text, text", rows,
        )  # fmt: skip
        tx.execute(
            f"WITH d (product_id, delta) AS (VALUES {values}), u AS (UPDATE {target[0]}) {ledger}",
            [*(v for pid in ids for v in (pid, totals[pid])), *target[1], *params],
        )
        return True

    def write_movement(
        self, tx: Tx, product_id: str, delta: int, kind: str, actor: str, *,
        order_id: str | None = None, note: str | None = None, site: str | None = None,
        allow_short: bool = False, sellable: bool = False, owed: int = 0,
    ) -> bool:  # fmt: skip
        """One ledger row and the cached stock it moves, without an outbox row.

        The only writer of stock: the shop's own sales and restocks (which
        then record the change) and changes applied by sync (which must not
        echo).  ``site`` moves that site's ``site_stock`` row instead of
        ``products.stock``.  False (nothing written) when it would take the
        stock below zero, unless ``allow_short``; with ``sellable`` (a sale
        here) when it would take more than is really there (``stock - owed``).
        ``owed`` moves the units owed with it (an oversell's hold, sync).
        """
        guard, extra = self._guard(delta, allow_short, sellable)
        row = (kind, delta, order_id, actor, note, self.stamp(), site)
        if tx.dialect == "postgres":
            # One round trip: the stock update and its ledger row in one statement.
            if site is None:
                target: tuple[str, tuple[Any, ...]] = (
                    "products SET stock = stock + ?, owed = owed + ?, updated_at = ? WHERE id = ?",
                    (delta, owed, self.stamp(), product_id),
                )
            else:
                target = (
                    "site_stock SET stock = stock + ?, owed = owed + ? WHERE site = ?"
                    " AND product_id = ?",
                    (delta, owed, site, product_id),
                )
            if tx.execute(
                f"WITH moved AS (UPDATE {target[0]}{guard} RETURNING 1 AS x)"
                " INSERT INTO stock_movements (product_id, kind, delta, order_id, actor, note,"
                " created_at, site) SELECT ?, ?, ?, ?, ?, ?, ?, ? FROM moved",
                (*target[1], *extra, product_id, *row),
            ):
                return True
            if site is None or tx.one(
                "SELECT 1 AS x FROM site_stock WHERE site = ? AND product_id = ?",
                (site, product_id),
            ):
                return False  # short of stock (or no such product)
        if site is None:
            moved = tx.execute(
                "UPDATE products SET stock = stock + ?, owed = owed + ?, updated_at = ?"
                f" WHERE id = ?{guard}",
                (delta, owed, self.stamp(), product_id, *extra),
            )
        else:
            update = (
                "UPDATE site_stock SET stock = stock + ?, owed = owed + ? WHERE site = ?"
                f" AND product_id = ?{guard}"
            )
            moved = tx.execute(update, (delta, owed, site, product_id, *extra))
            if moved == 0 and tx.execute(
                "INSERT INTO site_stock (site, product_id, stock) VALUES (?, ?, 0)"
                " ON CONFLICT DO NOTHING",
                (site, product_id),
            ):  # the site's first movement of this product: its row starts at 0
                moved = tx.execute(update, (delta, owed, site, product_id, *extra))
        if moved != 1:
            return False
        tx.execute(
            "INSERT INTO stock_movements (product_id, kind, delta, order_id, actor, note,"
            " created_at, site) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (product_id, *row),
        )
        return True

    @staticmethod
    def _guard(delta: int, allow_short: bool, sellable: bool) -> tuple[str, tuple[Any, ...]]:
        if allow_short or (sellable and delta >= 0):
            return "", ()  # a restock fills what is owed first: never refused
        if sellable:
            return " AND stock - owed + ? >= 0", (delta,)
        return " AND stock + ? >= 0", (delta,)

    @staticmethod
    def owe(tx: Tx, product_id: str, units: int, site: str | None = None) -> None:
        """Count ``units`` more (or fewer, negative; never below zero) as owed, the
        ledger untouched."""
        owed = "owed = CASE WHEN owed + ? < 0 THEN 0 ELSE owed + ? END"
        if site is None:
            tx.execute(f"UPDATE products SET {owed} WHERE id = ?", (units, units, product_id))
        else:
            tx.execute(f"UPDATE site_stock SET {owed} WHERE site = ? AND product_id = ?",
                       (units, units, site, product_id))  # fmt: skip

    @staticmethod
    def sellable_of(tx: Tx, product_id: str, site: str | None = None) -> int:
        """What is really there (``stock - owed``), never below zero."""
        if site is None:
            value = tx.scalar(f"SELECT {SELLABLE.format(t='')} AS n FROM products WHERE id = ?",
                              (product_id,))  # fmt: skip
        else:
            value = tx.scalar(
                f"SELECT {SELLABLE.format(t='')} AS n FROM site_stock WHERE site = ?"
                " AND product_id = ?",
                (site, product_id),
            )
        return int(value or 0)

    @staticmethod
    def stock_of(tx: Tx, product_id: str, site: str | None = None) -> int:
        if site is None:
            return int(tx.scalar("SELECT stock FROM products WHERE id = ?", (product_id,)) or 0)
        value = tx.scalar(
            "SELECT stock FROM site_stock WHERE site = ? AND product_id = ?", (site, product_id)
        )
        return int(value or 0)

    def stock_ledger(self, slug: str) -> list[dict[str, Any]]:
        with self.db.read() as tx:
            product = self._product_by(tx, "slug", slug)
            rows: list[dict[str, Any]] = tx.all(
                "SELECT kind, delta, order_id, actor, note, created_at FROM stock_movements"
                " WHERE product_id = ? ORDER BY id",
                (product.id,),
            )
        return rows

    def ledger_mismatches(self) -> list[str]:
        """Slugs whose cached stock differs from the ledger sum (should be empty)."""
        with self.db.read() as tx:
            rows = tx.all(
                "SELECT p.slug FROM products p LEFT JOIN (SELECT product_id, SUM(delta) AS s"
                " FROM stock_movements WHERE site IS NULL GROUP BY product_id) m"
                " ON m.product_id = p.id WHERE p.stock <> COALESCE(m.s, 0)"
            )
            sited = tx.all(
                "SELECT p.slug, k.site FROM (SELECT site, product_id, SUM(delta) AS s"
                " FROM stock_movements WHERE site IS NOT NULL GROUP BY site, product_id) k"
                " JOIN products p ON p.id = k.product_id LEFT JOIN site_stock ss"
                " ON ss.site = k.site AND ss.product_id = k.product_id"
                " WHERE COALESCE(ss.stock, 0) <> k.s"
            )
        return [r["slug"] for r in rows] + [f"{r['slug']}@{r['site']}" for r in sited]
