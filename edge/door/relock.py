"""Fail-secure relocking, independent of storage and of who opened the door.

The relock is armed *before* an unlock is sent and is driven only by time and
the lock's reported state: when the deadline passes the lock command is sent
(its log row written in the background, never awaited) and re-sent with a
backoff until the lock reports ``locked``.  A lock reported open while no
unlock window is armed (opened at the device, over MQTT, by a staff command
outside the door service) arms a relock too.  No database write sits on this
path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from drivers.model import DeviceSnapshot, LockState
from edge.core import Actor, EdgeCore

log = logging.getLogger(__name__)

RELOCK = Actor("door", "relock")
CONFIRM_S = 3.0  # how long one lock command waits for the device to confirm
RETRY_MAX_S = 10.0


class Relocker:
    def __init__(
        self,
        core: EdgeCore,
        room: str,
        lock: str,
        relock_s: float,
        alert: Callable[[str, str], None],
    ) -> None:
        self.core = core
        self.room = room
        self.lock = lock
        self.relock_s = relock_s
        self._alert = alert
        self.device, _ = core.device(room, lock)
        self._deadline: float | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.relocks = 0
        self.failing: str | None = None

    @property
    def armed(self) -> bool:
        return self._deadline is not None

    def start(self) -> None:
        self._unsubscribe = self.device.subscribe(self._on_change)
        self._task = asyncio.create_task(self._run(), name="door-relock")
        self._on_change(self.device.snapshot())  # found open at start: relock it

    def arm(self, after_s: float | None = None) -> None:
        """Relock ``after_s`` (default ``relock_s``) from now; a later unlock extends it."""
        at = asyncio.get_running_loop().time() + (self.relock_s if after_s is None else after_s)
        self._deadline = at
        self._wake.set()

    def now(self) -> None:
        self.arm(0.0)

    def _on_change(self, snap: DeviceSnapshot) -> None:
        state = snap.state
        if isinstance(state, LockState) and state.locked is False and self._deadline is None:
            log.warning("%s reported open with no unlock armed: relocking", self.device.device_id)
            self.arm()

    def _locked(self) -> bool:
        state = self.device.snapshot().state
        return isinstance(state, LockState) and state.locked is True

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._deadline is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            delay = self._deadline - loop.time()
            if delay > 0:
                self._wake.clear()
                # Re-armed meanwhile (a new unlock, or "now"): look again.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            await self._lock_until_confirmed()

    async def _lock_until_confirmed(self) -> None:
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            deadline = self._deadline
            outcome = await self._send_lock()
            if self._locked() or outcome == "ok":
                if self.failing is not None:
                    log.info("%s relocked after failures", self.device.device_id)
                self.failing = None
                self.relocks += 1
                # Only clear what we served: an unlock armed during the send stays.
                if self._deadline == deadline:
                    self._deadline = None
                return
            attempt += 1
            if self.failing is None:
                self.failing = outcome
                self._alert(
                    "door_relock_failed", f"relock of {self.device.device_id} failed: {outcome}"
                )
            pause = min(RETRY_MAX_S, 0.5 * 2**attempt)
            await asyncio.sleep(pause)
            if self._deadline is not None and self._deadline > loop.time():
                return  # a new unlock window was armed meanwhile: honour it

    async def _send_lock(self) -> str:
        try:
            outcome = await self.core.command(
                self.room,
                self.lock,
                {"locked": True},
                RELOCK,
                timeout=CONFIRM_S,
                wait_for_log=False,
                force=True,  # "offline" may be stale: try anyway
            )
        except Exception as exc:  # the relock must keep trying, whatever broke
            log.exception("relocking %s failed", self.device.device_id)
            return type(exc).__name__
        return outcome.result

    async def close(self) -> None:
        """Stop; an armed relock is carried out first (never leave the door open behind us)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
        if self._deadline is not None and not self._locked():
            await self._send_lock()
