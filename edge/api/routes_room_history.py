"""A room's temperature and humidity over the last hours, for the
dashboard's charts (staff): thinned from the stored state history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from drivers.model import DeviceKind
from edge.api.auth import require_staff
from edge.api.errors import ApiError
from edge.api.keys import CORE

routes = web.RouteTableDef()

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


@routes.get("/api/v1/rooms/{room_id}/history")
async def room_history(request: web.Request) -> web.Response:
    require_staff(request)
    core = request.app[CORE]
    room = core.room(request.match_info["room_id"])
    raw = request.query.get("hours", "24")
    if not raw.isdigit() or not 1 <= int(raw) <= 168:
        raise ApiError("invalid_field", "hours: a whole number from 1 to 168", field="hours")
    since = datetime.now(UTC) - timedelta(hours=int(raw))
    out: dict[str, Any] = {}
    for cfg in room.config.devices:
        if cfg.kind in CHARTED:
            rows = await core.store.history(f"{room.id}/{cfg.id}", limit=MAX_ROWS)
            out[cfg.id] = series(rows, since)
    return web.json_response({"room_id": room.id, "hours": int(raw), "devices": out})


def history_paths(op: Any, param: Any) -> dict[str, dict[str, Any]]:
    """This module's part of the OpenAPI document."""
    hours = param("hours", "query", {"type": "integer", "minimum": 1, "maximum": 168})
    return {
        "/api/v1/rooms/{room_id}/history": {
            "get": op(
                "Temperature and humidity of the room's climate devices and sensors over hours",
                params=[param("room_id"), hours],
                errors=(422,),
            )
        }
    }
