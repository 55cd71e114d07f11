"""The write spool: records whose write failed wait, in order, and are
written when storage returns; nothing waits on a store known to be down."""

from __future__ import annotations

import asyncio

from edge.spool import WriteSpool


class FlakyStore:
    """Fails every write while ``down`` (the injected fault), else keeps it."""

    def __init__(self) -> None:
        self.down = True
        self.rows: list[int] = []

    async def write(self, row: int) -> None:
        if self.down:
            raise OSError("disk full")
        self.rows.append(row)


async def test_spooled_rows_are_written_in_order_when_storage_returns() -> None:
    store = FlakyStore()
    spool: WriteSpool[int] = WriteSpool("test", store.write, retry_s=0.02)
    try:
        for row in range(5):
            spool.add(row, OSError("disk full") if row == 0 else None)
        assert not await spool.flush(timeout=0.2)
        assert spool.pending == 5 and spool.last_error == "disk full"
        store.down = False
        assert await spool.flush(timeout=5)
        assert store.rows == [0, 1, 2, 3, 4]
        assert spool.last_error is None and spool.written == 5
    finally:
        spool.close()


async def test_a_full_spool_drops_the_oldest_and_counts_it() -> None:
    store = FlakyStore()
    spool: WriteSpool[int] = WriteSpool("test", store.write, retry_s=0.02, limit=3)
    try:
        for row in range(5):
            spool.add(row)
        await asyncio.sleep(0.05)
        assert spool.pending == 3 and spool.dropped == 2
        store.down = False
        assert await spool.flush(timeout=5)
        assert store.rows == [2, 3, 4]
    finally:
        spool.close()
