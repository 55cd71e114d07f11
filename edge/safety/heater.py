"""Heater safety enforced by the edge itself, whatever any caller asked.

A sauna or steam heater (a climate device with ``heater = true``) is turned
off when its measured temperature passes ``hard_max_c``, and when it has been
in a heating mode for ``auto_off_minutes``.  The guard keeps retrying the
off command until the device confirms it, and raises an alert each time.
"""

from __future__ import annotations

import asyncio
import logging
import time

from drivers.config import DeviceLimits
from drivers.model import ClimateCommand, ClimateMode, ClimateState, Device
from edge.core import Actor, EdgeCore

log = logging.getLogger(__name__)

SAFETY = Actor("safety", "heater-guard")
HEATING = {ClimateMode.HEAT, ClimateMode.AUTO}


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
        self.hard_max_c = limits.hard_max_c
        self.auto_off_s = limits.auto_off_minutes * 60
        self.tick_s = tick_s
        self._heating_since: float | None = None
        self._alerted = False  # one alert per episode, not one per retry
        self.trips = 0

    def _reason_to_stop(self, state: ClimateState, now: float) -> str | None:
        if state.mode in HEATING:
            if self._heating_since is None:
                self._heating_since = now
        else:
            self._heating_since = None
        if state.mode is ClimateMode.OFF:
            self._alerted = False
        if state.current_c is not None and state.current_c > self.hard_max_c:
            return f"temperature {state.current_c} degC above hard maximum {self.hard_max_c} degC"
        if self._heating_since is not None and now - self._heating_since >= self.auto_off_s:
            return f"heating for {self.auto_off_s / 60:g} min, the auto-off limit"
        return None

    async def run(self) -> None:
        while True:
            state = self.device.snapshot().state
            if isinstance(state, ClimateState):
                reason = self._reason_to_stop(state, time.monotonic())
                # An unknown mode (None) counts as possibly heating.
                if reason is not None and state.mode is not ClimateMode.OFF:
                    await self._turn_off(reason)
            await asyncio.sleep(self.tick_s)

    async def _turn_off(self, reason: str) -> None:
        if not self._alerted:
            self._alerted = True
            self.trips += 1
            log.warning("heater %s: turning off: %s", self.device.device_id, reason)
            self.core.events.publish(
                "alert",
                {"severity": "critical", "device_id": self.device.device_id, "message": reason},
                room_id=self.room_id,
            )
        local_id = self.device.device_id.split("/", 1)[1]
        outcome = await self.core.command(
            self.room_id, local_id, ClimateCommand(mode=ClimateMode.OFF), SAFETY
        )
        if outcome.ok:
            self._heating_since = None
