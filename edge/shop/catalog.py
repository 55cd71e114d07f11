"""Products and the catalogue queries; the stock ledger is edge/shop/stock.py."""

from __future__ import annotations

import json
from typing import Any

from edge.shop.base import new_id
from edge.shop.errors import NotFound, ValidationFailed
from edge.shop.inputs import (
    CATEGORIES,
    CatalogueQuery,
    ProductInput,
    ProductPatch,
)
from edge.shop.money import to_cents
from edge.shop.records import Page, Product
from edge.shop.stock import _STORED, StockMixin, _columns_at


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class CatalogMixin(StockMixin):
    # ---- products -------------------------------------------------------
    def create_product(
        self, data: ProductInput | dict[str, Any], *, initial_stock: int = 0, actor: str = "system"
    ) -> Product:
        product = self._input(ProductInput, data)
        if initial_stock < 0:
            raise ValidationFailed("initial_stock", "must be >= 0")
        pid, now = new_id(), self.stamp()
        with self.db.write() as tx:
            tx.execute(
                f"INSERT INTO products ({_STORED}, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?)",
                (pid, *self._product_values(product), now, now),
            )
            # The product's change goes first: a node replaying the outbox in
            # order must know the product before its first stock movement.
            self.record_change(
                tx, "product", pid, "create", self._product_by(tx, "id", pid).to_json()
            )
            if initial_stock:
                self._move_stock(tx, pid, initial_stock, "restock", actor, note="initial stock")
            result = self._product_by(tx, "id", pid)
        return result

    @staticmethod
    def _product_values(p: ProductInput) -> tuple[Any, ...]:
        return (
            p.slug,
            p.name,
            p.category,
            p.description,
            p.short_description,
            to_cents(p.price),
            None if p.member_price is None else to_cents(p.member_price),
            p.low_stock_threshold,
            p.image_url,
            json.dumps(list(p.gallery)),
            int(p.active),
            int(p.featured),
            p.accounting_item_id,
        )

    def update_product(
        self, slug: str, patch: ProductPatch | dict[str, Any], *, actor: str = "system"
    ) -> Product:
        changes = self._input(ProductPatch, patch).model_dump(exclude_unset=True)
        with self.db.write() as tx:
            current = self._product_by(tx, "slug", slug, lock=True)
            merged = {k: getattr(current, k) for k in ProductInput.model_fields}
            merged["gallery"] = list(current.gallery)
            merged.update(changes)
            product = self._input(ProductInput, merged)
            tx.execute(
                "UPDATE products SET slug = ?, name = ?, category = ?, description = ?,"
                " short_description = ?, price_cents = ?, member_price_cents = ?,"
                " low_stock_threshold = ?, image_url = ?, gallery = ?, active = ?, featured = ?,"
                " accounting_item_id = ?, updated_at = ? WHERE id = ?",
                (*self._product_values(product), self.stamp(), current.id),
            )
            result = self._product_by(tx, "id", current.id)
            self.record_change(tx, "product", current.id, "update", result.to_json())
        return result

    def deactivate_product(self, slug: str, *, actor: str = "system") -> Product:
        """Products are never deleted (orders refer to them); they leave the catalogue."""
        return self.update_product(slug, {"active": False}, actor=actor)

    def get_product(
        self, slug: str, *, include_inactive: bool = False, site: str | None = None
    ) -> Product:
        """``site`` (a multi-site cloud): the product with that site's stock."""
        with self.db.read() as tx:
            product = self._product_by(tx, "slug", slug, site=self.stock_site(tx, site))
        if not product.active and not include_inactive:
            raise NotFound("product", slug)
        return product

    # ---- catalogue --------------------------------------------------------
    def list_products(
        self,
        query: CatalogueQuery | dict[str, Any] | None = None,
        *,
        include_inactive: bool = False,
        site: str | None = None,
    ) -> Page[Product]:
        """``site`` (a multi-site cloud): each product with that site's stock."""
        q = self._input(CatalogueQuery, query or {})
        where: list[str] = [] if include_inactive else ["active = 1"]
        params: list[Any] = []
        if q.category is not None:
            where.append("category = ?")
            params.append(q.category)
        if q.featured is not None:
            where.append("featured = ?")
            params.append(int(q.featured))
        if q.search:
            pattern = f"%{_escape_like(q.search.lower())}%"
            where.append(
                "(LOWER(name) LIKE ? ESCAPE '\\' OR LOWER(description) LIKE ? ESCAPE '\\'"
                " OR LOWER(short_description) LIKE ? ESCAPE '\\')"
            )
            params += [pattern, pattern, pattern]
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        order = ("featured DESC, " if q.featured_first else "") + "category, name, id"
        with self.db.read() as tx:
            total = int(tx.scalar(f"SELECT COUNT(*) AS n FROM products{clause}", params))
            columns, at = _columns_at(self.stock_site(tx, site))
            rows = tx.all(
                f"SELECT {columns} FROM products{clause} ORDER BY {order} LIMIT ? OFFSET ?",
                [*at, *params, q.page_size, (q.page - 1) * q.page_size],
            )
        return Page(tuple(Product.from_row(r) for r in rows), total, q.page, q.page_size)

    def categories(self) -> list[dict[str, Any]]:
        """Every category with its number of active products (zero included)."""
        with self.db.read() as tx:
            rows = tx.all(
                "SELECT category, COUNT(*) AS n FROM products WHERE active = 1 GROUP BY category"
            )
        counts = {r["category"]: int(r["n"]) for r in rows}
        return [{"category": c, "count": counts.get(c, 0)} for c in CATEGORIES]
