"""Who may call a LAN API route: the rules a route declares, and their checks.

Every route of ``edge.api.routes`` names one :class:`Access`; ``mount`` wraps
its handler with :func:`guarded`: the rule's check, then the route's declared
query and body models, then the handler.  So no handler checks roles or
parses its input itself: it reads ``request[QUERY]`` and ``request[BODY]``,
validated by the very models the OpenAPI document describes.  The auth
middleware has already resolved the caller (``auth.principal``); a rule only
judges it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from edge import route_table
from edge.api.auth import principal, require_room, require_staff
from edge.api.errors import read_json
from edge.api.keys import BODY, QUERY, SETTINGS
from edge.api.models import parse_query, parse_strict
from edge.route_table import RouteTableError, WebHandler

# Sync: a rule judges the principal the auth middleware resolved (no I/O).
Check = Callable[[web.Request], None]


@dataclass(frozen=True)
class Access:
    """An access rule: its name, what the OpenAPI document says it requires
    (None = public) and the check that refuses everyone else (401/403)."""

    name: str
    requires: str | None
    check: Check
    security: tuple[str, ...] = ("bearer", "cookie")


class Route(route_table.Route[WebHandler, Access]):
    """A LAN API route: ``path`` is the full path."""


def _anyone(request: web.Request) -> None:
    return None


def _signed_in(request: web.Request) -> None:
    principal(request)


def _staff(role: str) -> Check:
    def check(request: web.Request) -> None:
        require_staff(request, role)

    return check


def _room(request: web.Request) -> None:
    require_room(request, request.match_info["room_id"])


def _is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def _loopback_or_staff(request: web.Request) -> None:
    if not (request.app[SETTINGS].metrics_public_on_loopback and _is_loopback(request.remote)):
        require_staff(request)


PUBLIC = Access("public", None, _anyone, security=())
SIGNED_IN = Access("signed_in", "staff or any paired tablet", _signed_in)
STAFF = Access("staff", "staff", _staff("staff"))
MANAGER = Access("manager", "manager", _staff("manager"))
ADMIN = Access("admin", "admin", _staff("admin"))
ROOM = Access("room", "staff, or the tablet paired with the room in the path", _room)
LOOPBACK_OR_STAFF = Access(
    "loopback_or_staff", "staff, unless from loopback (metrics_public_on_loopback)",
    _loopback_or_staff,
)  # fmt: skip


def guarded(route: Route) -> WebHandler:
    """The aiohttp handler of ``route``: its access check, its query and body
    parsed by the declared models (422 naming the field), then its handler."""
    if route.auth is ROOM and "room_id" not in route.path_params:
        raise RouteTableError(f"{route.full_path}: the room rule needs {{room_id}} in the path")
    check, handler, query, body = route.auth.check, route.handler, route.query, route.body

    async def handle(request: web.Request) -> web.StreamResponse:
        check(request)
        if query is not None:
            request[QUERY] = parse_query(query, request.query)
        if body is not None:
            await read_json(request)  # 400 naming the body unless it is a JSON object
            request[BODY] = parse_strict(body, await request.read())
        return await handler(request)

    handle.__name__ = getattr(handler, "__name__", "handle")
    handle.__doc__ = handler.__doc__
    return handle


def is_public(route: Route) -> bool:
    return route.auth is PUBLIC


def security(route: Any) -> list[dict[str, list[str]]]:
    access: Access = route.auth
    return [{scheme: []} for scheme in access.security]


def requires(route: Any) -> str | None:
    access: Access = route.auth
    return access.requires


def auth_errors(route: Any) -> tuple[int, ...]:
    # Any signed-in request reads edge.db for its token: 503 when that is down.
    return () if route.auth is PUBLIC else (401, 403, 503)
