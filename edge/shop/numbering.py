"""Order and request numbers unique across the cloud and every edge, offline too.

``PO-YYYY-NNNNNN``: the six digits are ``block * 1000 + offset``.  Each year
and kind has 1000 blocks of 1000 numbers; a block belongs to exactly one
node.  The *authority* (the cloud, or a stand-alone edge) hands blocks out;
an edge spends the blocks it was leased and can keep trading offline until
they run out.  See docs/numbering.md.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Literal

from edge.shop.db import Database, Tx
from edge.shop.errors import Conflict, NumbersExhausted

Kind = Literal["PO", "CR"]
BLOCK_SIZE = 1000
BLOCKS_PER_YEAR = 1000
_MAX_RACES = 200


def format_number(kind: Kind, year: int, serial: int) -> str:
    return f"{kind}-{year:04d}-{serial:06d}"


def allocate(tx: Tx, kind: Kind, year: int, node: str, *, authority: bool) -> str:
    """Take the next number from this node's blocks (leasing one when authority)."""
    for _ in range(_MAX_RACES):
        row = tx.one(
            "SELECT block, next_offset FROM number_blocks WHERE kind = ? AND year = ?"
            " AND node = ? AND next_offset < ? ORDER BY block LIMIT 1",
            (kind, year, node, BLOCK_SIZE),
        )
        if row is None:
            if not authority:
                raise NumbersExhausted(
                    f"node {node!r} has no unused {kind} numbers for {year}; "
                    "it must lease a block from the cloud"
                )
            lease_block(tx, kind, year, node)
            continue
        block, offset = int(row["block"]), int(row["next_offset"])
        # Compare-and-set: a concurrent writer that took this offset first makes
        # this update touch no row, and we read again.
        won = tx.execute(
            "UPDATE number_blocks SET next_offset = next_offset + 1"
            " WHERE kind = ? AND year = ? AND block = ? AND next_offset = ?",
            (kind, year, block, offset),
        )
        if won == 1:
            return format_number(kind, year, block * BLOCK_SIZE + offset)
    raise Conflict(f"could not allocate a {kind} number (contention)")


def lease_block(tx: Tx, kind: Kind, year: int, node: str) -> int:
    """Authority side: give the next free block of ``year`` to ``node``."""
    for _ in range(_MAX_RACES):
        nxt = int(
            tx.scalar(
                "SELECT COALESCE(MAX(block), -1) + 1 AS nxt FROM number_blocks"
                " WHERE kind = ? AND year = ?",
                (kind, year),
            )
        )
        if nxt >= BLOCKS_PER_YEAR:
            raise NumbersExhausted(f"all {kind} numbers of {year} are leased")
        inserted = tx.execute(
            "INSERT INTO number_blocks (kind, year, block, node, next_offset)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (kind, year, nxt, node, 1 if nxt == 0 else 0),
        )
        if inserted == 1:
            return nxt
    raise Conflict(f"could not lease a {kind} block (contention)")


def accept_lease(tx: Tx, kind: Kind, year: int, block: int, node: str) -> None:
    """Edge side: record a block the authority leased to this node."""
    if not 0 <= block < BLOCKS_PER_YEAR:
        raise Conflict(f"block {block} is outside 0..{BLOCKS_PER_YEAR - 1}", field="block")
    tx.execute(
        "INSERT INTO number_blocks (kind, year, block, node, next_offset)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (kind, year, block, node, 1 if block == 0 else 0),
    )
    owner = tx.scalar(
        "SELECT node FROM number_blocks WHERE kind = ? AND year = ? AND block = ?",
        (kind, year, block),
    )
    if owner != node:
        raise Conflict(f"{kind} block {block} of {year} belongs to {owner!r}", field="block")


def retire_blocks(tx: Tx, node: str) -> None:
    """A restored disk: every block it holds may already be spent past its offset."""
    tx.execute("UPDATE number_blocks SET next_offset = ? WHERE node = ?", (BLOCK_SIZE, node))


def record_spent_block(tx: Tx, kind: Kind, year: int, block: int, node: str) -> None:
    """A block leased to this node that the disk no longer holds: used up, never spent."""
    tx.execute(
        "INSERT INTO number_blocks (kind, year, block, node, next_offset)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (kind, year, block, node, BLOCK_SIZE),
    )


def spare_numbers(tx: Tx, kind: Kind, year: int, node: str) -> int:
    """Numbers this node can still issue for ``year`` without asking anyone."""
    left = tx.scalar(
        "SELECT COALESCE(SUM(? - next_offset), 0) AS left FROM number_blocks"
        " WHERE kind = ? AND year = ? AND node = ?",
        (BLOCK_SIZE, kind, year, node),
    )
    return int(left)


class NumberReserve:
    """A cloud worker's numbers, so concurrent orders do not queue on one row.

    Numbers are reserved ``chunk`` at a time from this owner's blocks (leased
    like an edge's) in a short transaction on a connection of the reserve's
    own, then handed out from memory under a thread lock.  The order's
    transaction never touches ``number_blocks``.  A number taken by an order
    that then fails, and the unused rest of a chunk when the worker stops or
    is killed, are gaps: numbers stay unique, not gapless (docs/numbering.md).
    """

    def __init__(self, db: Database, owner: str, chunk: int = 100) -> None:
        self.db, self.owner, self.chunk = db, owner, chunk
        self.low = chunk // 4  # refill ahead below this many, while others still take
        self._lock = threading.Lock()  # the queues (held for microseconds)
        self._refill = threading.Lock()  # one reservation at a time
        self._free: dict[tuple[str, int], deque[str]] = {}

    def take(self, kind: Kind, year: int) -> str:
        """A number from memory; the thread that sees the queue run low reserves more
        while the others go on taking (they wait only when it is empty)."""
        key = (kind, year)
        while True:
            with self._lock:
                free = self._free.setdefault(key, deque())
                number = free.popleft() if free else None
                low = len(free) < self.low
            if low and self._refill.acquire(blocking=number is None):
                try:
                    with self._lock:
                        again = len(self._free[key]) < self.low
                    if again:
                        more = self._reserve(kind, year)
                        with self._lock:
                            self._free[key].extend(more)
                finally:
                    self._refill.release()
            if number is not None:
                return number

    def _reserve(self, kind: Kind, year: int) -> deque[str]:
        with self.db.write() as tx:
            for _ in range(_MAX_RACES):
                row = tx.one(
                    "SELECT block, next_offset FROM number_blocks WHERE kind = ? AND year = ?"
                    " AND node = ? AND next_offset < ? ORDER BY block LIMIT 1",
                    (kind, year, self.owner, BLOCK_SIZE),
                )
                if row is None:
                    lease_block(tx, kind, year, self.owner)
                    continue
                block, offset = int(row["block"]), int(row["next_offset"])
                take = min(self.chunk, BLOCK_SIZE - offset)
                won = tx.execute(
                    "UPDATE number_blocks SET next_offset = next_offset + ?"
                    " WHERE kind = ? AND year = ? AND block = ? AND next_offset = ?",
                    (take, kind, year, block, offset),
                )
                if won == 1:
                    first = block * BLOCK_SIZE + offset
                    return deque(format_number(kind, year, n) for n in range(first, first + take))
        raise Conflict(f"could not reserve {kind} numbers (contention)")
