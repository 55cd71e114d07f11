"""Alerts on the dashboard: the recent critical alerts with their channels'
delivery state, and the acknowledge action that stops repeats (any staff
member; audited)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from edge.alerts.dispatcher import dispatcher_for
from edge.api.auth import audit, require_staff
from edge.api.errors import ApiError
from edge.api.keys import CORE

routes = web.RouteTableDef()


@routes.get("/api/v1/alerts")
async def list_alerts(request: web.Request) -> web.Response:
    require_staff(request)
    dispatcher = dispatcher_for(request.app[CORE])
    if dispatcher is None:
        return web.json_response({"enabled": False, "alerts": [], "channels": []})
    return web.json_response({"enabled": True, **dispatcher.status()})


@routes.post("/api/v1/alerts/{alert_id}/ack")
async def ack_alert(request: web.Request) -> web.Response:
    who = require_staff(request)
    raw = request.match_info["alert_id"]
    if not raw.isdigit():
        raise ApiError("invalid_field", "alert_id: not a number", field="alert_id")
    dispatcher = dispatcher_for(request.app[CORE])
    alert = dispatcher.ack(int(raw), who.id) if dispatcher is not None else None
    if alert is None:
        raise ApiError("not_found", f"no alert {raw}", field="alert_id")
    await audit(request, "alert.ack", f"{alert.kind}:{alert.subject}", "ok", {"alert_id": alert.id})
    return web.json_response(alert.public())


def alert_paths(op: Any, param: Any) -> dict[str, dict[str, Any]]:
    """This module's part of the OpenAPI document."""
    return {
        "/api/v1/alerts": {"get": op("Recent critical alerts and the channels' delivery state")},
        "/api/v1/alerts/{alert_id}/ack": {
            "post": op(
                "Acknowledge an alert: no more repeats",
                params=[param("alert_id", schema={"type": "string", "pattern": r"^[0-9]{1,12}$"})],
                errors=(422,),
            )
        },
    }
