"""Shared state of the shop service: database, site settings, clock, change log."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from edge.shop.db import Database, Tx
from edge.shop.errors import ValidationFailed
from edge.shop.inputs import parse
from edge.shop.numbering import Kind, allocate
from edge.shop.records import jsonable

M = TypeVar("M", bound=BaseModel)
# An outbox entry: entity, entity id, op, payload, site.
Change = tuple[str, str, str, dict[str, Any], str | None]


@dataclass(frozen=True)
class ShopConfig:
    """Per-site settings.

    ``node_id`` names this node in numbers' block leases and in the outbox;
    ``number_authority`` is true for the cloud and for a stand-alone edge,
    false for an edge that spends blocks leased from the cloud.
    """

    node_id: str = "cloud"
    tax_rate: Decimal = Decimal("0.08")
    number_authority: bool = True
    timezone: str = "America/New_York"
    concierge_lead_days: int = 3
    adult_age: int = 18
    site: str | None = None  # an edge's own site: its orders and requests are of it


@dataclass(frozen=True)
class SiteRules:
    """What a site changes about an order: its tax rate, its calendar, its stock."""

    id: str | None
    tax_rate: Decimal
    timezone: str
    own_stock: bool  # True: stock is the site's row in ``site_stock`` (a multi-site cloud)


class SiteBook(Protocol):
    """Where a multi-site shop (the cloud) looks sites up; ``sync.sites.SiteBook``."""

    def rules(self, tx: Tx, site: str | None) -> SiteRules | None:
        """``site``'s rules; None when the chain has no sites (one shop, one stock).

        Raises ``ValidationFailed("site", ...)`` for an unknown site, or for
        none given while the chain has several sites (a chain of one takes it).
        """

    def sole(self, tx: Tx) -> str | None:
        """The site of a chain of one spa; None with none or several."""

    def known(self, tx: Tx, site: str) -> bool:
        """Is ``site`` a site of the chain (its stock is in ``site_stock``)?"""


def where_equal(**columns: Any) -> tuple[str, list[Any]]:
    """`` WHERE a = ? AND b = ?`` and its parameters, for the columns given a value."""
    used = {name: value for name, value in columns.items() if value is not None}
    if not used:
        return "", []
    return " WHERE " + " AND ".join(f"{name} = ?" for name in used), list(used.values())


def new_id() -> str:
    return uuid.uuid4().hex


class NumberSource(Protocol):
    def take(self, kind: Kind, year: int) -> str:
        """The next number of ``kind`` and ``year``, outside any order's transaction."""


class ShopBase:
    def __init__(
        self,
        db: Database,
        config: ShopConfig | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.db = db
        self.config = config or ShopConfig()
        self._clock = clock or (lambda: datetime.now(UTC))
        # Set by the cloud (``sync.sites.SiteBook``); an edge is one site.
        self.site_book: SiteBook | None = None
        # Set by a cloud worker on PostgreSQL (``numbering.NumberReserve``).
        self.numbers: NumberSource | None = None

    @functools.cached_property
    def _tz(self) -> ZoneInfo:
        # Loaded on first use, on the shop's own thread: reading the zone file
        # must not happen on the event loop that builds the shop.
        return ZoneInfo(self.config.timezone)

    def now(self) -> datetime:
        return self._clock().astimezone(UTC)

    def stamp(self) -> str:
        return self.now().isoformat(timespec="microseconds")

    def today(self) -> date:
        """The calendar day at the site (date rules are local, not UTC)."""
        return self._clock().astimezone(self._tz).date()

    def today_at(self, rules: SiteRules) -> date:
        """The calendar day at the site of ``rules`` (zone files are cached by zoneinfo)."""
        if rules.timezone == self.config.timezone:
            return self.today()
        return self._clock().astimezone(ZoneInfo(rules.timezone)).date()

    def site_rules(self, tx: Tx, site: str | None) -> SiteRules:
        """The rules for a new order or request of ``site`` (None: the shop's own).

        An edge is one site: ``site`` may only name it.  A cloud with sites
        asks its site book, which refuses an unknown or a missing site.
        """
        own = SiteRules(self.config.site, self.config.tax_rate, self.config.timezone, False)
        if self.site_book is None:
            if site is not None and site != self.config.site:
                here = self.config.site or "this spa"
                raise ValidationFailed("site", f"orders here are picked up at {here}")
            return own
        return self.site_book.rules(tx, site) or own

    def stock_site(self, tx: Tx, site: str | None) -> str | None:
        """The ``site_stock`` row an order of ``site`` moves; None: ``products.stock``.
        No site named, in a chain of one spa: that spa's (its stock is the one sold)."""
        if self.site_book is None:
            return None
        if site is None:
            return self.site_book.sole(tx)
        return site if self.site_book.known(tx, site) else None

    def next_number(self, tx: Tx, kind: Kind, year: int) -> str:
        """A cloud worker's reserve when it has one, else this node's blocks in ``tx``."""
        if self.numbers is not None:
            return self.numbers.take(kind, year)
        return allocate(tx, kind, year, self.config.node_id, authority=self.config.number_authority)

    @staticmethod
    def _input(model: type[M], data: M | Any) -> M:
        return data if isinstance(data, model) else parse(model, data)

    def record_change(
        self, tx: Tx, entity: str, entity_id: str, op: str, payload: dict[str, Any],
        *, site: str | None = None,
    ) -> None:  # fmt: skip
        """The one place a change other nodes must learn about is written down.

        Runs inside the caller's transaction, so the outbox row exists exactly
        when the change does.  The sync engine reads ``outbox`` by ``seq``;
        ``site`` (a multi-site cloud) says which site's nodes it belongs to.
        """
        self.record_changes(tx, [(entity, entity_id, op, payload, site)])

    def record_changes(self, tx: Tx, changes: list[Change]) -> None:
        """Several changes, in order, in one statement."""
        tx.execute(*self._outbox_insert(changes))

    def _outbox_insert(self, changes: list[Change]) -> tuple[str, list[Any]]:
        """The statement writing ``changes`` to the outbox (an order and its stock moves)."""
        stamp = self.stamp()
        rows = [(entity, entity_id, op, json.dumps(jsonable(payload), sort_keys=True),
                 self.config.node_id, stamp, site)
                for entity, entity_id, op, payload, site in changes]  # fmt: skip
        return (
            "INSERT INTO outbox (entity, entity_id, op, payload, node, created_at, site)"
            " VALUES " + ", ".join("(?, ?, ?, ?, ?, ?, ?)" for _ in rows),
            [v for row in rows for v in row],
        )

    def outbox(self, after_seq: int = 0, limit: int = 500) -> list[dict[str, Any]]:
        with self.db.read() as tx:
            rows = tx.all(
                "SELECT seq, entity, entity_id, op, payload, node, created_at FROM outbox"
                " WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            )
        return [{**r, "payload": json.loads(r["payload"])} for r in rows]
