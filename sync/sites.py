"""Sites as tenants of the cloud: a spa of the chain, its nodes, its share of numbers.

A site has a name, a tax rate, a time zone and a number-block quota per kind
and year.  Each node belongs to one site (``site_nodes``); the feed row of a
node's change carries that site, so another site's nodes never pull it, and
a node may not change another site's orders or requests.  Nodes registered
before sites existed (no ``site_nodes`` row) stay chain-wide.  Every admin
action is written to ``admin_audit`` in the same transaction.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from drivers.config import ID_PATTERN
from edge.shop.base import SiteRules
from edge.shop.db import Database, Tx
from edge.shop.errors import Conflict, NotFound, ValidationFailed
from sync.attention import utc_stamp

DEFAULT_BLOCK_QUOTA = 20  # blocks of 1000 numbers per kind and year; the chain has 1000


@dataclass(frozen=True)
class Site:
    id: str
    name: str
    tax_rate: str
    timezone: str
    block_quota: int
    created_at: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def audit(tx: Tx, actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
    tx.execute(
        "INSERT INTO admin_audit (actor, action, target, detail, at) VALUES (?, ?, ?, ?, ?)",
        (actor, action, target, json.dumps(detail, sort_keys=True), utc_stamp()),
    )


def _check(site_id: str, name: str, tax_rate: str, timezone: str, quota: int) -> str:
    if not re.match(ID_PATTERN, site_id):
        raise ValidationFailed("id", "lower-case letters, digits, - and _ (max 63)")
    if not 1 <= len(name.strip()) <= 200:
        raise ValidationFailed("name", "1 to 200 characters")
    try:
        rate = Decimal(tax_rate)
    except InvalidOperation:
        raise ValidationFailed("tax_rate", "a decimal such as 0.08") from None
    if not (rate.is_finite() and Decimal(0) <= rate < Decimal(1)):
        raise ValidationFailed("tax_rate", "between 0 and 1 (0.08 is 8 %)")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed("timezone", f"unknown time zone {timezone!r}") from None
    if not 1 <= quota <= 1000:
        raise ValidationFailed("block_quota", "1 to 1000 blocks per kind and year")
    return str(rate)


def add_site(
    db: Database, site_id: str, name: str, tax_rate: str, timezone: str, *,
    block_quota: int = DEFAULT_BLOCK_QUOTA, actor: str = "cli",
) -> Site:  # fmt: skip
    rate = _check(site_id, name, tax_rate, timezone, block_quota)
    site = Site(site_id, name.strip(), rate, timezone, block_quota, utc_stamp())
    with db.write() as tx:
        if tx.one("SELECT id FROM sites WHERE id = ?", (site_id,)):
            raise Conflict(f"site {site_id!r} exists", field="id")
        tx.execute(
            "INSERT INTO sites (id, name, tax_rate, timezone, block_quota, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (site.id, site.name, site.tax_rate, site.timezone, site.block_quota, site.created_at),
        )
        audit(tx, actor, "site.add", site_id, site.to_json())
    return site


def list_sites(db: Database) -> list[Site]:
    with db.read() as tx:
        rows = tx.all("SELECT id, name, tax_rate, timezone, block_quota, created_at FROM sites"
                      " ORDER BY id")  # fmt: skip
    return [Site(**{**r, "block_quota": int(r["block_quota"])}) for r in rows]


class SiteBook:
    """The cloud shop's view of the sites (``edge.shop.base.SiteBook``).

    Sites are added, never changed or removed, so a site once read is kept
    (per process); a site this process has not seen yet is read from the
    database, so one added by another worker counts at once.
    """

    def __init__(self) -> None:
        self._rules: dict[str, SiteRules] = {}
        self._known: set[str] = set()

    def rules(self, tx: Tx, site: str | None) -> SiteRules | None:
        if site is None:
            ids = self._first_two(tx)
            if not ids:
                return None  # a chain without sites: one shop, one stock
            if len(ids) > 1:
                raise ValidationFailed("site", "choose the pickup site")
            site = ids[0]  # a chain of one spa: there is nothing to choose
        known = self._rules.get(site)
        if known is not None:
            return known
        row = tx.one("SELECT id, tax_rate, timezone FROM sites WHERE id = ?", (site,))
        if row is None:
            raise ValidationFailed("site", f"no such site {site!r}")
        rules = SiteRules(str(row["id"]), Decimal(row["tax_rate"]), str(row["timezone"]), True)
        self._rules[site] = rules
        return rules

    def sole(self, tx: Tx) -> str | None:
        """The site of a chain of one spa; None with none or several."""
        ids = self._first_two(tx)
        return ids[0] if len(ids) == 1 else None

    @staticmethod
    def _first_two(tx: Tx) -> list[str]:
        return [str(r["id"]) for r in tx.all("SELECT id FROM sites ORDER BY id LIMIT 2")]

    def known(self, tx: Tx, site: str) -> bool:
        if site in self._rules or site in self._known:
            return True
        if tx.one("SELECT id FROM sites WHERE id = ?", (site,)) is None:
            return False
        self._known.add(site)  # never removed: one look-up per process
        return True


def bind_node(tx: Tx, node_id: str, site_id: str) -> None:
    """Inside the caller's transaction (the one creating the credential)."""
    if tx.one("SELECT id FROM sites WHERE id = ?", (site_id,)) is None:
        raise NotFound("site", site_id)
    tx.execute("INSERT INTO site_nodes (node_id, site_id, created_at) VALUES (?, ?, ?)",
               (node_id, site_id, utc_stamp()))  # fmt: skip


def site_of(tx: Tx, node_id: str) -> str | None:
    """The node's site; None for a chain-wide node (registered before sites)."""
    value = tx.scalar("SELECT site_id FROM site_nodes WHERE node_id = ?", (node_id,))
    return None if value is None else str(value)


def link_member(tx: Tx, member_id: str, site: str) -> bool:
    """``member_id`` is of ``site`` from now on (enrolled or ordered there); True if new.

    A node reads the members of its own site only (``CloudSync.pull``).
    """
    return (
        tx.execute(
            "INSERT INTO member_sites (member_id, site, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (member_id, site, utc_stamp()),
        )
        == 1
    )


def list_nodes(db: Database) -> list[dict[str, Any]]:
    with db.read() as tx:
        rows = tx.all(
            "SELECT n.node_id, s.site_id, n.active, n.created_at FROM edge_nodes n"
            " LEFT JOIN site_nodes s ON s.node_id = n.node_id ORDER BY n.node_id"
        )
    return [{"node_id": r["node_id"], "site": r["site_id"], "active": bool(r["active"]),
             "created_at": r["created_at"]} for r in rows]  # fmt: skip


def revoke_node(db: Database, node_id: str, *, actor: str = "cli") -> None:
    with db.write() as tx:
        if tx.execute("UPDATE edge_nodes SET active = 0 WHERE node_id = ?", (node_id,)) != 1:
            raise NotFound("node", node_id)
        audit(tx, actor, "node.revoke", node_id, {})


def check_lease_quota(tx: Tx, node_id: str, kind: str, year: int) -> None:
    """Refuse a new block when the node's site holds its quota for ``kind`` and ``year``."""
    site = site_of(tx, node_id)
    if site is None:
        return
    quota = int(tx.scalar("SELECT block_quota FROM sites WHERE id = ?", (site,)))
    held = int(
        tx.scalar(
            "SELECT COUNT(*) AS n FROM sync_leases l JOIN site_nodes s ON s.node_id = l.node"
            " WHERE s.site_id = ? AND l.kind = ? AND l.year = ?",
            (site, kind, year),
        )
    )
    if held >= quota:
        raise Conflict(
            f"site {site!r} holds its quota of {quota} {kind} blocks for {year};"
            " a chain admin can raise it", field="block_quota",
        )  # fmt: skip
