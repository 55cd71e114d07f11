"""What a guest tablet shows beyond device state: the site's name and time
zone, and for each sauna heater the heat-up estimate ("ready in N min",
from the heat-up rate measured in the stored state history) and the session
time left before the heater guard's auto-off.

Read-only: the numbers come from the heater guards and edge.db; nothing
here commands a device.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from drivers.model import ClimateMode

if TYPE_CHECKING:
    from edge.config import SceneConfig
    from edge.core import EdgeCore
    from edge.safety import HeaterGuard

# The rate is measured over the last RATE_WINDOW of history while heating,
# from at least RATE_MIN_RISE_C of rise over RATE_MIN_SPAN (sensor steps of
# 0.1-0.5 degC would otherwise make it jump).
RATE_WINDOW = timedelta(minutes=10)
RATE_MIN_SPAN = timedelta(seconds=2)
RATE_MIN_RISE_C = 0.5
READY_MARGIN_C = 1.0  # within this of the target counts as ready
HISTORY_ROWS = 400

_GUARDS: weakref.WeakKeyDictionary[EdgeCore, dict[str, HeaterGuard]] = weakref.WeakKeyDictionary()


def register_guards(core: EdgeCore, guards: Iterable[HeaterGuard]) -> None:
    """The daemon's heater guards, by device id (EdgeService calls this)."""
    _GUARDS[core] = {g.device.device_id: g for g in guards}


def guard_of(core: EdgeCore, device_id: str) -> HeaterGuard | None:
    return _GUARDS.get(core, {}).get(device_id)


DIM_MAX_BRIGHTNESS = 40  # a scene whose lights stay at or below this is a dim one


def scene_mood(scene: SceneConfig) -> str | None:
    """ "dim" for a scene that leaves its lights low or off, "bright" for one
    that lights up, None when it sets no light (the tablet's look follows it)."""
    lights = [a for a in scene.devices.values() if a.on is not None or a.brightness is not None]
    if not lights:
        return None
    low = all(
        a.on is False or (a.brightness is not None and a.brightness <= DIM_MAX_BRIGHTNESS)
        for a in lights
    )
    return "dim" if low else "bright"


def heat_rate_c_per_min(history: list[dict[str, Any]]) -> float | None:
    """The current heat-up rate from state history rows (newest first), or
    None while it cannot be told (not heating, too few or too close samples)."""
    samples: list[tuple[datetime, float]] = []
    for row in history:
        state = row.get("state") or {}
        current = state.get("current_c")
        heating = state.get("mode") in (ClimateMode.HEAT.value, ClimateMode.AUTO.value)
        if row.get("availability") != "online" or current is None or not heating:
            break  # the run of heating samples ends here
        ts = datetime.fromisoformat(row["ts"])
        if samples and samples[0][0] - ts > RATE_WINDOW:
            break
        samples.append((ts, float(current)))
    if len(samples) < 2:
        return None
    (newest_ts, newest_c), (oldest_ts, oldest_c) = samples[0], samples[-1]
    span = newest_ts - oldest_ts
    rise = newest_c - oldest_c
    if span < RATE_MIN_SPAN or rise < RATE_MIN_RISE_C:
        return None
    return rise / (span.total_seconds() / 60)


def heater_view(
    state: dict[str, Any], history: list[dict[str, Any]], guard: HeaterGuard | None
) -> dict[str, Any]:
    """The sauna's numbers for the tablet."""
    heating = state.get("mode") in (ClimateMode.HEAT.value, ClimateMode.AUTO.value)
    current, target = state.get("current_c"), state.get("target_c")
    rate = heat_rate_c_per_min(history) if heating else None
    ready = False
    ready_in = None
    if heating and current is not None and target is not None:
        ready = current >= target - READY_MARGIN_C
        if not ready and rate:
            ready_in = max(1, math.ceil((target - current) / rate))
    left = None
    if heating and guard is not None:
        heating_for = guard.heating_for_s()
        if heating_for is not None:
            left = max(0, round(guard.auto_off_s - heating_for))
    return {
        "heating": heating,
        "current_c": current,
        "target_c": target,
        "rate_c_per_min": None if rate is None else round(rate, 2),
        "ready": ready,
        "ready_in_min": ready_in,
        "session_left_s": left,
        "session_max_s": guard.auto_off_s if guard is not None else None,
    }
