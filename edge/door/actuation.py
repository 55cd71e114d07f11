"""Opening the door, and keeping it shut: unlock with the relock armed first,
denials, the failure cooldown and the quiet time after an outcome.

The lock is only ever touched through :meth:`EdgeCore.command`, with actor
``door:<member id>`` (face, PIN) or the staff member (remote).  Fail secure:
the relock (:mod:`edge.door.relock`) is armed before an unlock is sent and
runs on time and the lock's reported state alone; an unlock whose command log
row cannot be written relocks at once.  After a face or PIN unlock the
crossing counter (:mod:`edge.door.tailgate`) watches who comes in.
"""

from __future__ import annotations

import collections
import time
from typing import Any

from edge.core import Actor, EdgeCore
from edge.door.config import DoorConfig
from edge.door.records import DoorRecords, rounded
from edge.door.relock import Relocker
from edge.door.store import DoorEvent
from edge.door.tailgate import CrossingCounter
from edge.errors import StorageError

PENDING_QUIET_S = 3.0  # face_and_pin: not the same face again while they type
DENY_QUIET_S = 1.0


class DoorActuator:
    """Unlock, deny, pending: each one a door event; the door's resting times."""

    def __init__(self, core: EdgeCore, config: DoorConfig, records: DoorRecords) -> None:
        self.core = core
        self.config = config
        self.records = records
        self.relock = Relocker(core, config.room, config.lock, config.relock_s, records.alert)
        self.crossings = CrossingCounter()
        self._failures: collections.deque[float] = collections.deque()
        self._cooldown_until = 0.0
        self._quiet_until = 0.0

    @property
    def cooling_down(self) -> bool:
        return time.time() < self._cooldown_until

    def resting(self, now: float) -> bool:
        """Faces are ignored now: just after an outcome, or in a cooldown."""
        return now < self._quiet_until or now < self._cooldown_until

    async def unlock(
        self,
        method: str,
        actor: Actor,
        latency: dict[str, float],
        reason: str = "unlocked",
        **fields: Any,
    ) -> DoorEvent:
        config = self.config
        t0 = time.perf_counter()
        # Fail secure: the relock is armed before the unlock goes out, so no
        # failure after this line (storage, a bug, a cancelled request) can
        # leave the door open.
        self.relock.arm()
        try:
            outcome = await self.core.command(config.room, config.lock, {"locked": False}, actor)
        except StorageError as exc:
            # Sent, but not recorded: an unlock nobody can account for is undone.
            self.relock.now()
            await self.records.record(
                DoorEvent(
                    method,
                    "error",
                    "unlock_unrecorded",
                    actor=str(actor),
                    lock_result="unrecorded",
                    **fields,
                )
            )
            raise StorageError(f"door unlock could not be recorded; relocked: {exc}") from exc
        except BaseException:
            self.relock.now()
            raise
        latency["lock"] = (time.perf_counter() - t0) * 1e3
        if outcome.ok:
            self._quiet_until = time.time() + config.relock_s
            if method in ("face", "pin", "face+pin") and config.tailgate_window_s > 0:
                member = actor.id if actor.kind == "door" else None
                self.crossings.start(1, member, time.time() + config.tailgate_window_s)
        else:
            self.relock.now()  # it may have opened before failing to confirm
        decision = "unlock" if outcome.ok else "error"
        reason = reason if outcome.ok else f"lock_{outcome.result}"
        return await self.records.record(
            DoorEvent(
                method,
                decision,
                reason,
                actor=str(actor),
                latency_ms=rounded(latency),
                lock_result=outcome.result,
                **fields,
            )
        )

    async def pending(
        self, method: str, reason: str, latency: dict[str, float] | None, **fields: Any
    ) -> DoorEvent:
        """face_and_pin: one factor is in; the door stays locked until the other comes."""
        self._quiet_until = time.time() + PENDING_QUIET_S
        return await self.records.record(
            DoorEvent(method, "pending", reason, latency_ms=rounded(latency), **fields)
        )

    async def deny(
        self, method: str, reason: str, latency: dict[str, float] | None, **fields: Any
    ) -> DoorEvent:
        event = await self.records.record(
            DoorEvent(method, "deny", reason, latency_ms=rounded(latency), **fields)
        )
        self._quiet_until = time.time() + DENY_QUIET_S
        await self._count_failure()
        return event

    async def _count_failure(self) -> None:
        config = self.config
        now = time.time()
        self._failures.append(now)
        while self._failures and self._failures[0] < now - config.failure_window_s:
            self._failures.popleft()
        if len(self._failures) >= config.failure_limit:
            self._cooldown_until = now + config.cooldown_s
            count = len(self._failures)
            self._failures.clear()
            await self.records.record(
                DoorEvent("system", "cooldown", f"{count} failed attempts", actor="door")
            )
            self.records.alert(
                "door_cooldown",
                f"{count} failed attempts at the door; face access paused "
                f"for {config.cooldown_s:.0f}s",
            )
