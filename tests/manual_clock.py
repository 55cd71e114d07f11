"""A clock the test moves (edge.clock.Clock): schedules and alert timing are
tested at chosen instants, never by sleeping until a wall-clock time."""

from __future__ import annotations

import asyncio
from datetime import datetime


class TestClock:
    """A clock that moves only when the test says so."""

    __test__ = False

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._moved = asyncio.Event()
        self.seen: datetime | None = None

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        while True:
            self.seen = self._now  # the sleeper has looked at this time
            if self._now >= when:
                return
            await self._moved.wait()

    def set(self, when: datetime) -> None:
        self._now = when
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()
