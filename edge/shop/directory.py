"""Staff look-ups across the shop: the member picker and the stock alerts.

Read-only helpers over :class:`Shop`; like the shop's own methods they are
synchronous and belong on a thread pool, never on the event loop.
"""

from __future__ import annotations

from edge.shop.catalog import _escape_like
from edge.shop.records import Member, Product
from edge.shop.service import Shop

_MEMBER_COLUMNS = "id, name, email, phone, date_of_birth, tier, active"
# The catalogue query pages at most this many products at a time.
_PAGE = 100


def search_members(
    shop: Shop, *, search: str | None = None, active: bool | None = None, limit: int = 50
) -> list[Member]:
    """Members by name (or email) containing ``search``, ordered by name."""
    where: list[str] = []
    params: list[object] = []
    if search:
        pattern = f"%{_escape_like(search.lower())}%"
        where.append("(LOWER(name) LIKE ? ESCAPE '\\' OR LOWER(email) LIKE ? ESCAPE '\\')")
        params += [pattern, pattern]
    if active is not None:
        where.append("active = ?")
        params.append(int(active))
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    with shop.db.read() as tx:
        rows = tx.all(
            f"SELECT {_MEMBER_COLUMNS} FROM members{clause} ORDER BY LOWER(name), id LIMIT ?",
            [*params, limit],
        )
    return [Member.from_row(r) for r in rows]


def stock_alerts(shop: Shop) -> list[Product]:
    """Active products at or below their low-stock level (sold out included), emptiest first."""
    found: list[Product] = []
    page = 1
    while True:
        batch = shop.list_products({"page": page, "page_size": _PAGE})
        found.extend(p for p in batch.items if p.stock <= p.low_stock_threshold)
        if page * _PAGE >= batch.total:
            break
        page += 1
    return sorted(found, key=lambda p: (p.stock, p.name))
