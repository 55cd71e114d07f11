"""Rooms, scenes, device commands and the command log (door events: routes_door).

Tablets see only their own room, never lock devices: a room token can set
lights and climate within the limits and run scenes that do not unlock a
door.  Everything goes through ``EdgeCore``, which checks limits before
sending and logs each command with its actor.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from drivers.model import DeviceKind
from edge.api.auth import Principal, audit, principal
from edge.api.errors import ApiError
from edge.api.keys import BODY, CORE, QUERY
from edge.api.models import CommandBody, CommandsQuery
from edge.core import DeviceOutcome, EdgeCore, Room
from edge.errors import InvalidCommand
from edge.room_views import TABLET_KINDS, Audience, build_view, scene_list, scene_unlocks

# Driver outcome -> (error code, human message); "ok" is absent.
OUTCOME_ERRORS = {
    "timeout": ("device_timeout", "the device did not confirm the command in time"),
    "unavailable": ("device_unavailable", "the device is offline; nothing was sent"),
    "rejected": ("device_rejected", "the device refused the command"),
    "clamped": ("device_clamped", "the device took another value than asked"),
    "io_error": ("device_io_error", "the command could not be delivered"),
    "unsupported": ("unsupported_command", "the device does not support this command"),
    "error": ("device_io_error", "the driver failed"),
}


def core_of(request: web.Request) -> EdgeCore:
    core: EdgeCore = request.app[CORE]
    return core


def device_kinds(room: Room) -> dict[str, DeviceKind]:
    return {cfg.id: cfg.kind for cfg in room.config.devices}


def audience(who: Principal) -> Audience:
    return "staff" if who.kind == "staff" else "tablet"


def room_view(room: Room, who: Principal) -> dict[str, Any]:
    """The room snapshot with device names and limits; locks hidden from tablets."""
    return build_view(room, audience(who))


def json_bytes(body: bytes, status: int = 200) -> web.Response:
    """A JSON response from already encoded bytes."""
    return web.Response(body=body, status=status, content_type="application/json")


async def list_rooms(request: web.Request) -> web.Response:
    who = principal(request)
    core = core_of(request)
    ids = [room.id for room in core.rooms() if who.kind == "staff" or room.id == who.room_id]
    return json_bytes(b'{"rooms":' + core.views.encoded_list(ids, audience(who)) + b"}")


async def get_room(request: web.Request) -> web.Response:
    room_id = request.match_info["room_id"]
    who = principal(request)
    # Encoded once per change of the room, not once per request.
    return json_bytes(core_of(request).views.encoded(room_id, audience(who)))


async def list_scenes(request: web.Request) -> web.Response:
    room_id = request.match_info["room_id"]
    who = principal(request)
    scenes = scene_list(core_of(request).room(room_id), audience(who))
    return web.json_response({"scenes": scenes})


async def activate_scene(request: web.Request) -> web.Response:
    room_id, scene_id = request.match_info["room_id"], request.match_info["scene_id"]
    who = principal(request)
    core = core_of(request)
    room = core.room(room_id)
    if who.kind == "tablet" and scene_unlocks(room, scene_id):
        raise ApiError(
            "forbidden", "tablets cannot run scenes that unlock a door", field="scene_id"
        )
    result = await core.activate_scene(room_id, scene_id, who.actor)
    body = result.as_dict()
    if who.kind == "staff":
        await audit(
            request,
            "scene.activate",
            f"{room_id}/{scene_id}",
            "ok" if result.ok else "failed",
            {"failed": body["failed"]},
        )
    if not result.ok:
        failed = ", ".join(body["failed"])
        raise ApiError(
            "scene_failed", f"scene ran but these devices failed: {failed}", extra={"result": body}
        )
    return web.json_response(body)


async def device_command(request: web.Request) -> web.Response:
    room_id, device_id = request.match_info["room_id"], request.match_info["device_id"]
    who = principal(request)
    body: CommandBody = request[BODY]
    core = core_of(request)
    _, cfg = core.device(room_id, device_id)
    if who.kind == "tablet" and cfg.kind not in TABLET_KINDS:
        raise ApiError("forbidden", f"tablets cannot command a {cfg.kind}", field="device_id")
    target = f"{room_id}/{device_id}"
    try:
        outcome = await core.command(room_id, device_id, body.values(), who.actor)
    except InvalidCommand as exc:
        if who.kind == "staff":
            await audit(
                request,
                "device.command",
                target,
                "refused",
                {"command": body.values(), "reason": str(exc)},
            )
        raise
    if who.kind == "staff":
        await audit(request, "device.command", target, outcome.result, {"command": body.values()})
    return outcome_response(outcome)


def outcome_response(outcome: DeviceOutcome) -> web.Response:
    if outcome.ok:
        return web.json_response(outcome.as_dict())
    code, message = OUTCOME_ERRORS.get(outcome.result, OUTCOME_ERRORS["error"])
    detail = f"{message}: {outcome.detail}" if outcome.detail else message
    raise ApiError(code, detail, field=None, extra={"outcome": outcome.as_dict()})


async def command_log(request: web.Request) -> web.Response:
    q: CommandsQuery = request[QUERY]
    rows = await core_of(request).store.commands(device_id=q.device_id, limit=q.limit)
    return web.json_response({"commands": rows})
