"""A room's temperature and humidity over the last hours, for the
dashboard's charts (staff): thinned from the stored state history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from drivers.model import DeviceKind
from edge.api.keys import CORE, QUERY

CHARTED = (DeviceKind.CLIMATE, DeviceKind.SENSOR)
MAX_ROWS = 5000  # per device: a day at one row every ~17 s
MAX_POINTS = 288  # drawn: one every 5 min over 24 h


def series(rows: list[dict[str, Any]], since: datetime) -> list[dict[str, Any]]:
    """Oldest first, within the window, thinned to at most MAX_POINTS."""
    points = []
    for row in reversed(rows):
        if datetime.fromisoformat(row["ts"]) < since:
            continue
        state = row["state"] or {}
        values = state.get("values") or {}
        temp = state.get("current_c", values.get("temperature_c"))
        humidity = state.get("humidity", values.get("humidity"))
        if temp is None and humidity is None:
            continue
        points.append({"ts": row["ts"], "temperature_c": temp, "humidity": humidity})
    step = max(1, len(points) // MAX_POINTS)
    return points[::step]


async def room_history(request: web.Request) -> web.Response:
    core = request.app[CORE]
    room = core.room(request.match_info["room_id"])
    hours: int = request[QUERY].hours
    since = datetime.now(UTC) - timedelta(hours=hours)
    out: dict[str, Any] = {}
    for cfg in room.config.devices:
        if cfg.kind in CHARTED:
            rows = await core.store.history(f"{room.id}/{cfg.id}", limit=MAX_ROWS)
            out[cfg.id] = series(rows, since)
    return web.json_response({"room_id": room.id, "hours": hours, "devices": out})
