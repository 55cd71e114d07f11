"""The wall clock, injectable: the scheduler and the alert dispatcher read the
time and wait through a :class:`Clock`, so tests move time themselves instead
of sleeping until a wall-clock time (tests/test_schedules.py ``TestClock``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Protocol

# A wall-clock sleep re-reads the clock at least this often, so an NTP step
# or a suspended VM cannot make a wait hours late.
MAX_NAP_S = 30.0


class Clock(Protocol):
    """Where the scheduler reads the time and waits (injected by tests)."""

    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Return once ``now() >= when``."""
        ...


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        # Naps, not one long sleep: the loop's clock is monotonic and would not
        # see a wall-clock step (NTP, a suspended VM) until the sleep ended.
        while (left := (when - self.now()).total_seconds()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(min(left, MAX_NAP_S))
