"""In-process event bus: device state changes, scene results, commands, alerts.

Publishers never wait: each subscriber has a bounded queue, and a subscriber
too slow to keep up loses its oldest events (counted in ``dropped``, and for
the whole bus in ``EventBus.dropped``) rather than slowing the controller or
growing memory.  What must not be lost does not ride a queue: a *tap* is a
plain callback run inside ``publish`` (metrics counters), and durable facts
are read from their own store (attendance reads the door-event table).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    type: str  # e.g. "device_state", "scene", "command", "alert"
    data: dict[str, Any]
    room_id: str | None = None
    seq: int = 0
    ts: float = field(default_factory=time.time)


Tap = Callable[[Event], None]


class Subscription:
    def __init__(self, bus: EventBus, maxsize: int, types: frozenset[str] | None) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.types = types
        self.dropped = 0

    def _offer(self, event: Event) -> None:
        if self.types is not None and event.type not in self.types:
            return
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
            self._bus.dropped += 1
        self._queue.put_nowait(event)

    async def get(self) -> Event:
        return await self._queue.get()

    def close(self) -> None:
        self._bus._subscribers.discard(self)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield await self._queue.get()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self._taps: list[Tap] = []
        self._seq = itertools.count(1)
        self.dropped = 0  # events lost by slow subscribers, all subscriptions together

    def tap(self, callback: Tap) -> Callable[[], None]:
        """Call ``callback(event)`` synchronously for every event published, lossless;
        it must be quick and must not raise.  Returns the function that removes it."""
        self._taps.append(callback)
        return lambda: self._taps.remove(callback) if callback in self._taps else None

    def subscribe(self, *, maxsize: int = 1000, types: set[str] | None = None) -> Subscription:
        sub = Subscription(self, maxsize, frozenset(types) if types is not None else None)
        self._subscribers.add(sub)
        return sub

    def publish(self, type: str, data: dict[str, Any], *, room_id: str | None = None) -> Event:
        event = Event(type, data, room_id, next(self._seq))
        for tap in list(self._taps):
            tap(event)
        for sub in list(self._subscribers):
            sub._offer(event)
        return event

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
