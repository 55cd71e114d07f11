"""Shared state of the shop service: database, site settings, clock, change log."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from edge.shop.db import Database, Tx
from edge.shop.inputs import parse
from edge.shop.records import jsonable

M = TypeVar("M", bound=BaseModel)


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


def where_equal(**columns: Any) -> tuple[str, list[Any]]:
    """`` WHERE a = ? AND b = ?`` and its parameters, for the columns given a value."""
    used = {name: value for name, value in columns.items() if value is not None}
    if not used:
        return "", []
    return " WHERE " + " AND ".join(f"{name} = ?" for name in used), list(used.values())


def new_id() -> str:
    return uuid.uuid4().hex


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

    @staticmethod
    def _input(model: type[M], data: M | Any) -> M:
        return data if isinstance(data, model) else parse(model, data)

    def record_change(
        self, tx: Tx, entity: str, entity_id: str, op: str, payload: dict[str, Any]
    ) -> None:
        """The one place a change other nodes must learn about is written down.

        Runs inside the caller's transaction, so the outbox row exists exactly
        when the change does.  The sync engine reads ``outbox`` by ``seq``.
        """
        tx.execute(
            "INSERT INTO outbox (entity, entity_id, op, payload, node, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                entity,
                entity_id,
                op,
                json.dumps(jsonable(payload), sort_keys=True),
                self.config.node_id,
                self.stamp(),
            ),
        )

    def outbox(self, after_seq: int = 0, limit: int = 500) -> list[dict[str, Any]]:
        with self.db.read() as tx:
            rows = tx.all(
                "SELECT seq, entity, entity_id, op, payload, node, created_at FROM outbox"
                " WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            )
        return [{**r, "payload": json.loads(r["payload"])} for r in rows]
