"""``door_forced``: a lock that reports its door open while it reports
itself locked — the door was forced, or the bolt is not holding.  Raised once
per opening, for every lock of the site, from the devices' own state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from drivers.model import DeviceSnapshot, LockState
from edge.core import EdgeCore


def watch_forced_doors(core: EdgeCore) -> list[Callable[[], None]]:
    """Listen to every lock; returns the functions that stop listening."""
    forced: set[str] = set()
    loop = asyncio.get_running_loop()

    def on_change(snap: DeviceSnapshot) -> None:
        state = snap.state
        if not isinstance(state, LockState):
            return
        now_forced = state.door_open is True and state.locked is True
        if now_forced and snap.device_id not in forced:
            forced.add(snap.device_id)
            # Not from inside the device's listener: publish on the next turn.
            loop.call_soon(
                core.events.publish,
                "alert",
                {
                    "severity": "critical",
                    "kind": "door_forced",
                    "device_id": snap.device_id,
                    "message": f"{snap.device_id} reports the door open while locked: "
                    "forced, or the bolt is not holding",
                },
            )
        elif not now_forced:
            forced.discard(snap.device_id)

    return [
        device.subscribe(on_change)
        for _, device in core.all_devices()
        if device.snapshot().kind.value == "lock"
    ]
