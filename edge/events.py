"""In-process event bus: device state changes, scene results, commands, alerts.

Publishers never wait: each subscriber has a bounded queue, and a subscriber
too slow to keep up loses its oldest events (counted in ``dropped``) rather
than slowing the controller or growing memory.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    type: str  # e.g. "device_state", "scene", "command", "alert"
    data: dict[str, Any]
    room_id: str | None = None
    seq: int = 0
    ts: float = field(default_factory=time.time)


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
        self._seq = itertools.count(1)

    def subscribe(self, *, maxsize: int = 1000, types: set[str] | None = None) -> Subscription:
        sub = Subscription(self, maxsize, frozenset(types) if types is not None else None)
        self._subscribers.add(sub)
        return sub

    def publish(self, type: str, data: dict[str, Any], *, room_id: str | None = None) -> Event:
        event = Event(type, data, room_id, next(self._seq))
        for sub in list(self._subscribers):
            sub._offer(event)
        return event

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
