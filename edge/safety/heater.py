"""Heater safety enforced by the edge itself, whatever any caller asked.

A sauna or steam heater (a climate device with ``heater = true``) is turned
off when:

- its measured temperature passes ``hard_max_c``;
- it has been heating for ``auto_off_minutes``.  The heating-since time is on
  disk (:mod:`edge.safety.clock`), so a restart resumes the clock and a
  heater found heating past its limit at start is switched off at once;
- its temperature has been unknown (not reported, or the device offline)
  for ``unknown_temp_grace_s`` while it may be heating.

An unknown mode counts as heating.  A reported setpoint outside the limits,
whoever set it (the device's panel, a direct MQTT publish), is corrected at
once with an alert naming the source.  A heater going offline while heating
raises a critical alert at once.  Off commands are forced (sent even to a
device marked offline), never wait on a log write, and are retried every
tick until the device reports "off".  Where the device has its own timer
(``device_timer``), every heat command carries the remaining time, so a dead
daemon still ends in "off".
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from typing import Any

from drivers.config import DeviceLimits
from drivers.model import (
    Availability,
    ClimateCommand,
    ClimateMode,
    ClimateState,
    Device,
    DeviceSnapshot,
)
from edge.core import Actor, EdgeCore
from edge.safety.clock import SAFETY_DB, HeaterClock

log = logging.getLogger(__name__)

# A stored session start this far ahead of the clock means the clock went back.
CLOCK_SLACK_S = 5.0

SAFETY = Actor("safety", "heater-guard")
HEATING = {ClimateMode.HEAT, ClimateMode.AUTO}
# A change the edge itself sent is attributed to its actor for this long.
ATTRIBUTION_S = 10.0
CLOCK_LOAD_WAIT_S = 2.0


class HeaterGuard:
    def __init__(
        self,
        core: EdgeCore,
        room_id: str,
        device: Device,
        limits: DeviceLimits,
        *,
        tick_s: float = 1.0,
    ) -> None:
        assert limits.hard_max_c is not None and limits.auto_off_minutes is not None
        self.core = core
        self.room_id = room_id
        self.device = device
        self.local_id = device.device_id.split("/", 1)[1]
        self.limits = limits
        self.hard_max_c = limits.hard_max_c
        self.auto_off_s = limits.auto_off_minutes * 60
        self.tick_s = tick_s
        _, cfg = core.device(room_id, self.local_id)
        self.device_timer = cfg.device_timer
        self.clock = HeaterClock(core.store.path.parent / SAFETY_DB, device.device_id)
        self._heating_since: float | None = None
        self._heating_since_mono: float | None = None
        self._clock_saved: float | None = None
        self._temp_unknown_since: float | None = None
        # Latched from a trip until the device reports "off": a heater that
        # comes back (online again, temperature known) is still switched off.
        self._tripped: str | None = None
        self._offline_alerted = False
        self._corrected: float | None = None
        self._wake = asyncio.Event()
        self._clock_loaded = asyncio.Event()
        self.trips = 0
        # Registered at construction, before any task runs: no heat command can
        # slip past the guard while it is still starting.
        core.heat_hooks[device.device_id] = self.before_heat

    # -- clock -------------------------------------------------------------------------
    def remaining_on_time(self) -> int:
        """Seconds a heat command may run on the device's own timer."""
        heated = self.heating_for_s() or 0.0
        return max(1, math.ceil(self.auto_off_s - heated))

    async def before_heat(self, command: ClimateCommand) -> ClimateCommand:
        """Run by the core before any heat command goes out: the session's
        clock is on disk first (a daemon killed right after the send still
        resumes it), and a device with its own timer gets the time left."""
        with contextlib.suppress(TimeoutError):
            # The persisted clock first, or this would start a new session.
            await asyncio.wait_for(self._clock_loaded.wait(), CLOCK_LOAD_WAIT_S)
        if self.heating_since is None:
            self.heating_since = time.time()
        await self._persist_clock()
        if self.device_timer == "none":
            return command
        return dataclasses.replace(command, on_time_s=self.remaining_on_time())

    async def _persist_clock(self) -> None:
        if self._clock_saved == self.heating_since:
            return
        try:
            await self.clock.save(self.heating_since)
        except Exception as exc:  # the guard runs on; the next tick tries again
            log.error("heater %s: heating clock not saved: %s", self.device.device_id, exc)
            return
        self._clock_saved = self.heating_since

    # -- decisions ---------------------------------------------------------------------
    def _reason_to_stop(self, snap: DeviceSnapshot, now: float) -> str | None:
        state = snap.state
        assert isinstance(state, ClimateState)
        # An unknown mode (None) counts as possibly heating.
        heating = state.mode is None or state.mode in HEATING
        if heating:
            if self.heating_since is None:
                self.heating_since = now
        else:
            self.heating_since = None
        if state.mode is ClimateMode.OFF:
            self._tripped = None
        elif self._tripped is not None:
            return self._tripped
        temp_known = state.current_c is not None and snap.availability is Availability.ONLINE
        if temp_known or not heating:
            self._temp_unknown_since = None
        elif self._temp_unknown_since is None:
            self._temp_unknown_since = now
        if state.current_c is not None and state.current_c > self.hard_max_c:
            return f"temperature {state.current_c} degC above hard maximum {self.hard_max_c} degC"
        heated = self.heating_for_s()
        if heated is not None and heated >= self.auto_off_s:
            return f"heating for {self.auto_off_s / 60:g} min, the auto-off limit"
        grace = self.limits.unknown_temp_grace_s
        if self._temp_unknown_since is not None and now - self._temp_unknown_since >= grace:
            return f"temperature unknown for {grace:g} s while it may be heating"
        return None

    def _out_of_limits(self, state: ClimateState) -> float | None:
        """The setpoint to correct to, when the reported one is outside the limits."""
        t = state.target_c
        if t is None or state.mode is ClimateMode.OFF:
            return None
        if t > self.limits.max_target_c:
            return self.limits.max_target_c
        if t < self.limits.min_target_c:
            return self.limits.min_target_c
        return None

    def _source_of(self, target_c: float) -> str:
        """Who set ``target_c``: an edge caller (tablet, staff, MQTT scene topic)
        if it sent it just now, else a direct MQTT publish the driver saw on the
        device's command topic, else the device's own panel."""
        last = self.core.last_commands.get(self.device.device_id)
        if last is not None:
            actor, fields, at = last
            sent = fields.get("target_c")
            recent = time.monotonic() - at < ATTRIBUTION_S
            if sent is not None and abs(float(sent) - target_c) < 0.05 and recent:
                return str(actor)
        external = getattr(self.device, "last_external_command", None)
        if external is not None and time.monotonic() - external[0] < ATTRIBUTION_S:
            # One outside command explains one change; the next is someone else's.
            self.device.last_external_command = None  # type: ignore[attr-defined]
            return f"mqtt (published straight to {external[1]})"
        return "device panel (changed at the heater, not through the edge)"

    # -- the loop ----------------------------------------------------------------------
    # The session start is kept in wall-clock time, because it must mean the
    # same to the next process (safety.db).  Within a process the limit is
    # measured on the monotonic clock from the moment the start was learnt, so
    # a wall-clock jump (NTP step, a wrong RTC corrected) never stretches a
    # session; a start "in the future" (the clock went back while the daemon
    # was down) counts as a session already at its limit.
    @property
    def heating_since(self) -> float | None:
        return self._heating_since

    @heating_since.setter
    def heating_since(self, value: float | None) -> None:
        self._heating_since = value
        if value is None:
            self._heating_since_mono = None
            return
        elapsed = time.time() - value
        if elapsed < -CLOCK_SLACK_S:
            log.warning(
                "heater %s: heating start lies %.0f s in the future (the clock went back):"
                " treating the session as at its limit",
                self.device.device_id,
                -elapsed,
            )
            elapsed = self.auto_off_s
        self._heating_since_mono = time.monotonic() - max(0.0, elapsed)

    def heating_for_s(self) -> float | None:
        """How long this session has heated, immune to wall-clock jumps."""
        if self._heating_since_mono is None:
            return None
        return time.monotonic() - self._heating_since_mono

    async def run(self) -> None:
        try:
            loaded = await self.clock.load()
        except Exception as exc:
            loaded = None
            log.error("heater %s: heating clock not readable: %s", self.device.device_id, exc)
        if loaded is not None and (self.heating_since is None or loaded < self.heating_since):
            self.heating_since = loaded
        self._clock_saved = loaded
        self._clock_loaded.set()
        if self.heating_since is not None:
            log.info(
                "heater %s: resuming a heating session started %.0f s ago",
                self.device.device_id,
                time.time() - self.heating_since,
            )
        unsubscribe = self.device.subscribe(lambda _snap: self._wake.set(), every_report=True)
        self.core.heat_hooks[self.device.device_id] = self.before_heat
        try:
            while True:
                await self.check()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.tick_s)
        finally:
            unsubscribe()
            self.core.heat_hooks.pop(self.device.device_id, None)
            await self.clock.close()

    async def check(self) -> None:
        snap = self.device.snapshot()
        state = snap.state
        if not isinstance(state, ClimateState):
            return
        reason = self._reason_to_stop(snap, time.time())
        await self._persist_clock()
        self._watch_availability(snap)
        if reason is not None and state.mode is not ClimateMode.OFF:
            await self._turn_off(reason)
            return
        correct_to = self._out_of_limits(state)
        if correct_to is not None and snap.availability is Availability.ONLINE:
            await self._correct(state, correct_to)

    def _watch_availability(self, snap: DeviceSnapshot) -> None:
        state = snap.state
        assert isinstance(state, ClimateState)
        heating = state.mode is None or state.mode in HEATING
        online = snap.availability is Availability.ONLINE
        if online:
            self._offline_alerted = False
        elif heating and snap.availability is Availability.OFFLINE and not self._offline_alerted:
            self._offline_alerted = True
            grace = self.limits.unknown_temp_grace_s
            self._publish_alert(
                "heater_offline",
                f"heater went offline while heating; it is switched off (best effort) "
                f"if it stays unseen for {grace:g} s",
            )

    async def _correct(self, state: ClimateState, to: float) -> None:
        assert state.target_c is not None
        if self._corrected != state.target_c:
            self._corrected = state.target_c
            source = self._source_of(state.target_c)
            self._publish_alert(
                "heater_setpoint_corrected",
                f"setpoint {state.target_c} degC is outside "
                f"{self.limits.min_target_c}-{self.limits.max_target_c} degC; set to {to} degC",
                source=source,
            )
        outcome = await self.core.command(
            self.room_id, self.local_id, ClimateCommand(target_c=to), SAFETY, wait_for_log=False
        )
        if outcome.ok:
            self._corrected = None

    async def _turn_off(self, reason: str) -> None:
        if self._tripped is None:
            self._tripped = reason
            self.trips += 1
            log.warning("heater %s: turning off: %s", self.device.device_id, reason)
            self._publish_alert("heater_safety_off", reason)
        outcome = await self.core.command(
            self.room_id,
            self.local_id,
            ClimateCommand(mode=ClimateMode.OFF),
            SAFETY,
            wait_for_log=False,
            force=True,
        )
        if outcome.ok:
            self.heating_since = None
            self._temp_unknown_since = None
            await self._persist_clock()

    def _publish_alert(self, kind: str, message: str, **extra: Any) -> None:
        self.core.events.publish(
            "alert",
            {
                "severity": "critical",
                "kind": kind,
                "device_id": self.device.device_id,
                "message": message,
                **extra,
            },
            room_id=self.room_id,
        )
