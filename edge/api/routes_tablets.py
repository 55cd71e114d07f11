"""Tablet pairing: staff make a one-time, short-lived code for a room; a tablet
trades it for a room token.  Staff list and revoke tablets."""

from __future__ import annotations

import secrets
import time

from aiohttp import web

from edge.api import db
from edge.api.auth import TABLET_PREFIX, Auth, audit, client_ip, principal
from edge.api.errors import ApiError
from edge.api.keys import AUTH, BODY, CORE, SETTINGS, WS_HUB
from edge.api.models import PairBody
from edge.api.settings import ApiSettings
from edge.core import EdgeCore
from edge.store import Store

# No 0/O or 1/I/L: codes are read off a screen and typed on a tablet.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8


def normalise_code(code: str) -> str:
    return code.strip().upper().replace("-", "").replace(" ", "")


async def create_pairing_code(request: web.Request) -> web.Response:
    who = principal(request)
    room_id = request.match_info["room_id"]
    core: EdgeCore = request.app[CORE]
    core.room(room_id)  # 404 for an unknown room
    settings: ApiSettings = request.app[SETTINGS]
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    expires_at = time.time() + settings.pairing_code_ttl_s
    await core.store.call(
        lambda c: db.insert_pairing_code(c, db.digest(code), room_id, who.id, expires_at)
    )
    await audit(request, "tablet.pairing_code", room_id, "ok")
    return web.json_response(
        {"code": code, "room_id": room_id, "expires_in_s": settings.pairing_code_ttl_s},
        status=201,
    )


async def pair_tablet(request: web.Request) -> web.Response:
    body: PairBody = request[BODY]
    store: Store = request.app[CORE].store
    settings: ApiSettings = request.app[SETTINGS]
    ip_key = [f"pair-ip:{client_ip(request)}"]
    now = time.time()
    if await store.call(lambda c: db.locked_until(c, ip_key)) > now:
        raise ApiError(
            "too_many_attempts",
            "too many wrong pairing codes; wait and retry",
            headers={"Retry-After": str(int(settings.login_lockout_base_s) + 1)},
        )
    token = TABLET_PREFIX + secrets.token_urlsafe(32)
    tablet_id = "tab-" + secrets.token_hex(4)
    code_hash = db.digest(normalise_code(body.code))
    room_id = await store.call(
        lambda c: db.redeem_pairing_code(c, code_hash, now, tablet_id, db.digest(token), body.name)
    )
    if room_id is None:
        throttle = request.app[AUTH].pairing_throttle
        await store.call(lambda c: db.record_failure(c, ip_key[0], now, throttle))
        await audit(request, "tablet.pair", None, "bad_code", actor="anonymous")
        raise ApiError("invalid_field", "code: unknown, used or expired pairing code", field="code")
    await audit(
        request, "tablet.pair", tablet_id, "ok", {"room_id": room_id}, actor=f"tablet:{tablet_id}"
    )
    return web.json_response(
        {"token": token, "room_id": room_id, "tablet_id": tablet_id}, status=201
    )


async def list_tablets(request: web.Request) -> web.Response:
    store: Store = request.app[CORE].store
    return web.json_response({"tablets": await store.call(db.list_tablets)})


async def revoke_tablet(request: web.Request) -> web.Response:
    tablet_id = request.match_info["tablet_id"]
    store: Store = request.app[CORE].store
    revoked = await store.call(lambda c: db.revoke_tablet(c, tablet_id))
    auth: Auth = request.app[AUTH]
    auth.forget()
    request.app[WS_HUB].disconnect_tablet(tablet_id)
    await audit(request, "tablet.revoke", tablet_id, "ok" if revoked else "not_found")
    if not revoked:
        raise ApiError("not_found", f"no active tablet {tablet_id!r}", field="tablet_id")
    return web.json_response({"ok": True, "tablet_id": tablet_id})
