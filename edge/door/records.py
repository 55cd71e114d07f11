"""Door events: stored durably, published on the event bus, never lost to a
database that is down.

Every attempt and every door fault becomes a :class:`~edge.door.store.DoorEvent`,
written through the vault and published as event type ``door``; an event the
database does not take (locked, full disk) is spooled and written when storage
returns, and the door status shows the fault meanwhile.  Alerts (type
``alert``) name the door.  Events carry scores, the liveness verdict and
per-stage latency, never a template or an image.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time

from edge.core import EdgeCore
from edge.door.store import DoorEvent
from edge.door.vault import Vault
from edge.spool import WriteSpool

log = logging.getLogger(__name__)


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def rounded(latency: dict[str, float] | None) -> dict[str, float] | None:
    return None if latency is None else {k: round(v, 2) for k, v in latency.items()}


class DoorRecords:
    """Where the door's events and alerts go."""

    def __init__(self, core: EdgeCore, vault: Vault, door_id: str) -> None:
        self.core = core
        self.vault = vault
        self.door_id = door_id
        self.spool: WriteSpool[DoorEvent] = WriteSpool("door-events", self._write)

    def alert(self, kind: str, message: str) -> None:
        self.core.events.publish("alert", {"kind": kind, "message": message, "door": self.door_id})

    async def record(self, event: DoorEvent) -> DoorEvent:
        """Store and publish one event.  A database that does not take it never
        stops the caller: the event is spooled and written when storage returns."""
        stamped = event if event.ts else dataclasses.replace(event, ts=time.time())
        stored: DoorEvent = stamped
        if self.spool.pending:
            self.spool.add(stamped)
        else:
            try:
                stored = await self._write(stamped)
            except Exception as exc:
                log.error("door event not stored (%s); spooled", exc)
                self.spool.add(stamped, exc)
        # room_id stays None: tablets never see door events.
        self.core.events.publish(
            "door",
            {**stored.as_dict(), "door": self.door_id, "spooled": stored.id is None},
        )
        return stored

    async def _write(self, event: DoorEvent) -> DoorEvent:
        return await self.vault.record_event(event)

    async def close(self) -> None:
        await self.spool.flush(timeout=2.0)
        self.spool.close()
