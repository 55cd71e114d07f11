"""The door: real door events, staff remote unlock, the keypad PIN, consent,
enrollment, PINs and the member data export.

Staff only, except ``POST /api/v1/door/pin``, which answers the door keypad
(``X-Keypad-Token``, the token in ``<data_dir>/door-keypad.token``).  Tablets
get 403 everywhere here.  Every state change is audited; no response ever
carries a template or an image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web
from pydantic import Field, StrictStr

from drivers.model import DeviceKind
from edge.api.access import Access
from edge.api.auth import audit, principal
from edge.api.errors import ApiError
from edge.api.keys import BODY, CORE, PRINCIPAL, QUERY, WS_HUB
from edge.api.models import Body, DoorEventsQuery, DoorMembersQuery
from edge.core import EdgeCore
from edge.door import registry
from edge.door.errors import (
    ConsentRequired,
    DoorRefused,
    EnrollmentRejected,
    PinThrottled,
    UnknownMember,
)
from edge.shop.directory import search_members

if TYPE_CHECKING:  # the door service loads numpy and OpenCV: only when a door runs
    from edge.door.service import DoorService
KEYPAD_HEADER = "X-Keypad-Token"
MAX_PHOTOS_IN_REQUEST = 10


class UnlockBody(Body):
    reason: StrictStr = Field(min_length=3, max_length=200, description="Why staff open it.")


class PinBody(Body):
    member_id: StrictStr = Field(min_length=1, max_length=64, description="Member id.")
    pin: StrictStr = Field(min_length=1, max_length=16, description="The member's PIN.")


class SetPinBody(Body):
    pin: StrictStr = Field(pattern=r"^[0-9]{4,8}$", description="4 to 8 digits.")


class ConsentBody(Body):
    purpose: StrictStr = Field(
        "door access by face", min_length=3, max_length=200, description="What it is for."
    )
    retention_days: int | None = Field(
        None, ge=1, le=1095, description="Shorter retention than the site default."
    )


class WithdrawBody(Body):
    note: StrictStr = Field("", max_length=200, description="Optional note.")


def door_of(request: web.Request) -> DoorService:
    door = registry.door_for(request.app[CORE])
    if door is None:
        raise ApiError("not_found", "this site has no [door] section", field="door")
    return door


def _refusal(exc: DoorRefused) -> ApiError:
    if isinstance(exc, UnknownMember):
        return ApiError("not_found", str(exc), field=exc.field)
    if isinstance(exc, PinThrottled):
        return ApiError(
            "too_many_attempts",
            str(exc),
            field="pin",
            headers={"Retry-After": str(int(exc.retry_after_s) + 1)},
        )
    if isinstance(exc, EnrollmentRejected):
        return ApiError("invalid_field", str(exc), field="photos", extra={"problems": exc.problems})
    if isinstance(exc, ConsentRequired):
        return ApiError("conflict", str(exc), field=exc.field)
    return ApiError("invalid_field", str(exc), field=exc.field)


async def door_events(request: web.Request) -> web.Response:
    """Door events (face, PIN, remote, cooldown, vision errors) merged with lock
    commands sent outside the door service (staff, scenes) and door alerts, newest first."""
    q: DoorEventsQuery = request[QUERY]
    limit = q.limit
    core: EdgeCore = request.app[CORE]
    events: list[dict[str, Any]] = []
    door = registry.door_for(core)
    if door is not None:
        member = q.member_id
        stored = await door.vault.events(limit, member)
        events.extend({"type": "door", **e.as_dict(), "ts": e.as_dict()["time"]} for e in stored)
    for room in core.rooms():
        for cfg in room.config.devices:
            if cfg.kind is DeviceKind.LOCK:
                rows = await core.store.commands(device_id=f"{room.id}/{cfg.id}", limit=limit)
                events.extend(
                    {"type": "lock_command", "room_id": room.id, **r}
                    for r in rows
                    if r.get("actor_kind") != "door"  # already told by its door event
                )
    for alert in request.app[WS_HUB].recent_alerts():
        events.append({"type": "alert", **alert})
    events.sort(key=lambda e: str(e.get("ts", "")), reverse=True)
    return web.json_response({"events": events[:limit]})


async def door_status(request: web.Request) -> web.Response:
    return web.json_response(door_of(request).status())


async def remote_unlock(request: web.Request) -> web.Response:
    who = principal(request)
    body: UnlockBody = request[BODY]
    event = await door_of(request).remote_unlock(who.actor, body.reason)
    await audit(request, "door.unlock", event.actor, event.decision, {"reason": body.reason})
    if event.decision != "unlock":
        raise ApiError("device_io_error", f"the lock did not open: {event.reason}")
    return web.json_response(event.as_dict())


def keypad_check(request: web.Request) -> None:
    """The KEYPAD rule: the door keypad's token, never a tablet."""
    who = request.get(PRINCIPAL)
    if who is not None and who.kind == "tablet":
        raise ApiError("forbidden", "tablets cannot use the door keypad endpoint")
    # Authenticate before saying anything about the site (such as having no door).
    door = registry.door_for(request.app[CORE])
    if door is None or not door.keypad_ok(request.headers.get(KEYPAD_HEADER, "")):
        raise ApiError("unauthenticated", f"the keypad must send {KEYPAD_HEADER}")


KEYPAD = Access(
    "keypad", f"the door keypad token ({KEYPAD_HEADER} header)", keypad_check, security=("keypad",)
)


async def keypad_pin(request: web.Request) -> web.Response:
    door = door_of(request)
    body: PinBody = request[BODY]
    try:
        event = await door.pin_unlock(body.member_id, body.pin, request.remote or "keypad")
    except PinThrottled as exc:
        await audit(request, "door.pin", body.member_id, "throttled", actor="door:keypad")
        raise _refusal(exc) from None
    await audit(request, "door.pin", body.member_id, event.decision, actor="door:keypad")
    return web.json_response({"decision": event.decision, "reason": event.reason, "id": event.id})


async def members(request: web.Request) -> web.Response:
    """Shop members with their face-access consent status and template count."""
    door = door_of(request)
    q: DoorMembersQuery = request[QUERY]
    search, limit = q.search or None, q.limit
    found = await door.core.run_shop(lambda shop: search_members(shop, search=search, limit=limit))
    overview = await door.vault.overview()
    rows = []
    for m in found:
        status = overview.get(m.id, {"consent": "none", "templates": 0, "pin": False})
        rows.append({"id": m.id, "name": m.name, "tier": m.tier, "active": m.active, **status})
    return web.json_response({"members": rows})


async def consent_history(request: web.Request) -> web.Response:
    member_id = request.match_info["member_id"]
    history = await door_of(request).vault.consent_history(member_id)
    return web.json_response({"member_id": member_id, "history": history})


async def grant_consent(request: web.Request) -> web.Response:
    who = principal(request)
    member_id = request.match_info["member_id"]
    body: ConsentBody = request[BODY]
    try:
        consent = await door_of(request).grant_consent(
            member_id, who.id, body.purpose, body.retention_days
        )
    except DoorRefused as exc:
        raise _refusal(exc) from None
    await audit(request, "door.consent.grant", member_id, "ok", {"consent_id": consent.id})
    return web.json_response(
        {
            "consent_id": consent.id,
            "member_id": member_id,
            "text_version": consent.text_version,
            "purpose": consent.purpose,
            "retention_days": consent.retention_days,
            "witness": consent.witness,
        },
        status=201,
    )


async def withdraw_consent(request: web.Request) -> web.Response:
    who = principal(request)
    member_id = request.match_info["member_id"]
    body: WithdrawBody = request[BODY]
    destroyed = await door_of(request).withdraw_consent(member_id, who.id, body.note)
    await audit(request, "door.consent.withdraw", member_id, "ok", {"templates": destroyed})
    return web.json_response({"member_id": member_id, "templates_destroyed": destroyed})


async def set_pin(request: web.Request) -> web.Response:
    who = principal(request)
    member_id = request.match_info["member_id"]
    body: SetPinBody = request[BODY]
    try:
        await door_of(request).set_pin(member_id, body.pin, who.id)
    except DoorRefused as exc:
        raise _refusal(exc) from None
    await audit(request, "door.pin.set", member_id, "ok")
    return web.json_response({"member_id": member_id, "pin": True})


async def enroll(request: web.Request) -> web.Response:
    """multipart/form-data with 3-5 ``photos`` parts; the photos are never stored."""
    who = principal(request)
    member_id = request.match_info["member_id"]
    door = door_of(request)
    photos = await _read_photos(request)
    try:
        ids = await door.enroll_photos(member_id, photos, who.id)
    except DoorRefused as exc:
        await audit(request, "door.enroll", member_id, "refused", {"reason": str(exc)})
        raise _refusal(exc) from None
    await audit(request, "door.enroll", member_id, "ok", {"templates": len(ids)})
    return web.json_response({"member_id": member_id, "templates": len(ids)}, status=201)


async def _read_photos(request: web.Request) -> list[tuple[str, bytes]]:
    # Read part by part with our own limits: the app's 64 KiB body cap is for JSON.
    if not request.content_type.startswith("multipart/"):
        raise ApiError("bad_request", "send photos as multipart/form-data", field="photos")
    from edge.door.enroll import MAX_PHOTO_BYTES  # loads vision: only when a door enrolls

    try:
        reader = await request.multipart()
    except ValueError as exc:  # no boundary, or not a multipart type aiohttp reads
        raise ApiError("bad_request", f"unreadable multipart body: {exc}", field="photos") from None
    photos: list[tuple[str, bytes]] = []
    while True:
        try:
            part = await reader.next()
        except ValueError as exc:  # a part without its boundary or headers
            raise ApiError(
                "bad_request", f"malformed multipart body: {exc}", field="photos"
            ) from None
        if part is None:
            break
        if not isinstance(part, BodyPartReader) or part.name != "photos":
            raise ApiError("invalid_field", "only 'photos' parts are accepted", field="photos")
        if len(photos) >= MAX_PHOTOS_IN_REQUEST:
            raise ApiError("invalid_field", "photos: too many", field="photos")
        data = bytearray()
        while chunk := await part.read_chunk(64 * 1024):
            data += chunk
            if len(data) > MAX_PHOTO_BYTES:
                raise ApiError("invalid_field", "photos: a photo is over 8 MiB", field="photos")
        photos.append((part.filename or f"photo-{len(photos) + 1}", bytes(data)))
    return photos


async def export_member(request: web.Request) -> web.Response:
    """Everything stored about a member at the door (no template bytes); managers only."""
    member_id = request.match_info["member_id"]
    try:
        data: dict[str, Any] = await door_of(request).export(member_id)
    except DoorRefused as exc:
        raise _refusal(exc) from None
    await audit(request, "member.export", member_id, "ok")
    return web.json_response(data)
