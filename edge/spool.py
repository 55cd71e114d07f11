"""Writes that must not block or stop a safety action.

A record whose write failed (database locked, disk full) waits here, in
order, and one background task writes it when storage returns.  While
anything is waiting, new records join the queue instead of trying first, so
order is kept and no caller waits on a database that is known to be down.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_RETRY_S = 1.0
# Bounded: a storage outage of days must not eat the memory.  The oldest
# record goes first, and the loss is counted and logged.
DEFAULT_LIMIT = 10_000


class WriteSpool(Generic[T]):
    def __init__(
        self,
        name: str,
        write: Callable[[T], Awaitable[object]],
        *,
        retry_s: float = DEFAULT_RETRY_S,
        limit: int = DEFAULT_LIMIT,
    ) -> None:
        self.name = name
        self._write = write
        self.retry_s = retry_s
        self._items: collections.deque[T] = collections.deque()
        self._limit = limit
        self._task: asyncio.Task[None] | None = None
        self.last_error: str | None = None
        self.dropped = 0
        self.written = 0

    @property
    def pending(self) -> int:
        return len(self._items)

    def add(self, item: T, error: BaseException | str | None = None) -> None:
        """Queue ``item`` (its write failed with ``error``, or storage is known down)."""
        if error is not None:
            self.last_error = str(error) or type(error).__name__
        if len(self._items) >= self._limit:
            self._items.popleft()
            self.dropped += 1
            log.error(
                "%s spool full: dropped the oldest record (%d so far)", self.name, self.dropped
            )
        self._items.append(item)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name=f"spool-{self.name}")

    async def _drain(self) -> None:
        failing = False
        while self._items:
            try:
                await self._write(self._items[0])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = str(exc) or type(exc).__name__
                if not failing:
                    failing = True
                    log.warning("%s: storage failing (%s); spooling", self.name, self.last_error)
                await asyncio.sleep(self.retry_s)
                continue
            self._items.popleft()
            self.written += 1
        if failing or self.last_error is not None:
            log.info("%s: storage back, spooled records written", self.name)
        self.last_error = None

    async def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the queue to drain; True when empty."""
        task = self._task
        if task is not None and not task.done():
            await asyncio.wait([task], timeout=timeout)
        return not self._items

    def close(self) -> None:
        """Stop retrying (shutdown); what is still queued is logged as lost."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self._items:
            log.error("%s: %d spooled records not written at shutdown", self.name, len(self._items))
