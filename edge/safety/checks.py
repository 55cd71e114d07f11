"""Warnings about a valid config that leaves safety to this daemon alone.

A heater without a device-side timer (``device_timer = "none"``) stays on
while the daemon is dead; the hardware chain in docs/deploy.md (the heater's
own thermal cut-out and timer) is then the only protection.  ``validate-config``
prints these; they do not make the config invalid.
"""

from __future__ import annotations

from edge.config import SiteConfig
from edge.tomlpos import locate


def heater_warnings(config: SiteConfig, text: str = "", source: str = "<config>") -> list[str]:
    warnings = []
    for r, room in enumerate(config.rooms):
        for d, device in enumerate(room.devices):
            if device.heater and device.device_timer == "none":
                line = locate(text, ("rooms", r, "devices", d)) if text else None
                where = f"{source}:{line}" if line else source
                warnings.append(
                    f"{where}: warning: heater {room.id}/{device.id} has no device-side timer "
                    '(device_timer = "none"): if this daemon dies it stays on until its own '
                    "thermal cut-out or timer acts (docs/deploy.md)"
                )
    return warnings
