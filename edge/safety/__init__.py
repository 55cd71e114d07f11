"""The safety kernel: what keeps the door locked and the heater off whatever
else fails (storage, the MQTT bridge, a caller).

- :mod:`edge.safety.heater`: the heater guard (hard maximum, auto-off that
  survives restarts, out-of-limit correction, offline alerts).
- :mod:`edge.door.relock`: the fail-secure door relock.
- :mod:`edge.spool`: records that could not be written wait in memory and
  are written when storage returns; a failed write never stops a safety
  action.
"""

from edge.safety.heater import HeaterGuard

__all__ = ["HeaterGuard"]
