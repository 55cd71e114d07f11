"""The shop service: one object the edge daemon and the cloud both call.

Every method is synchronous and runs its own transaction; servers call them
from a thread pool, never on the event loop.
"""

from __future__ import annotations

from edge.shop import numbering
from edge.shop.concierge import ConciergeMixin
from edge.shop.order_batch import BatchOrdersMixin
from edge.shop.replica import ReplicaMixin
from edge.shop.schema import migrate_database


class Shop(BatchOrdersMixin, ConciergeMixin, ReplicaMixin):
    """Products, stock ledger, members, pickup orders and concierge requests."""

    def migrate(self) -> int:
        return migrate_database(self.db)

    def lease_block(self, kind: numbering.Kind, node: str, year: int | None = None) -> int:
        """Authority: lease the next block of numbers to ``node`` (an edge)."""
        with self.db.write() as tx:
            return numbering.lease_block(tx, kind, year or self.today().year, node)

    def accept_lease(self, kind: numbering.Kind, block: int, year: int | None = None) -> None:
        """Edge: record a block the cloud leased to this node."""
        with self.db.write() as tx:
            numbering.accept_lease(tx, kind, year or self.today().year, block, self.config.node_id)

    def spare_numbers(self, kind: numbering.Kind, year: int | None = None) -> int:
        with self.db.read() as tx:
            return numbering.spare_numbers(tx, kind, year or self.today().year, self.config.node_id)
