"""Alerts on the dashboard: the recent critical alerts with their channels'
delivery state, and the acknowledge action that stops repeats (any staff
member; audited)."""

from __future__ import annotations

from aiohttp import web

from edge.alerts.dispatcher import dispatcher_for
from edge.api.auth import audit, principal
from edge.api.errors import ApiError
from edge.api.keys import CORE


async def list_alerts(request: web.Request) -> web.Response:
    dispatcher = dispatcher_for(request.app[CORE])
    if dispatcher is None:
        return web.json_response({"enabled": False, "alerts": [], "channels": []})
    return web.json_response({"enabled": True, **dispatcher.status()})


async def ack_alert(request: web.Request) -> web.Response:
    who = principal(request)
    raw = request.match_info["alert_id"]
    if not raw.isdigit():
        raise ApiError("invalid_field", "alert_id: not a number", field="alert_id")
    dispatcher = dispatcher_for(request.app[CORE])
    alert = dispatcher.ack(int(raw), who.id) if dispatcher is not None else None
    if alert is None:
        raise ApiError("not_found", f"no alert {raw}", field="alert_id")
    await audit(request, "alert.ack", f"{alert.kind}:{alert.subject}", "ok", {"alert_id": alert.id})
    return web.json_response(alert.public())
