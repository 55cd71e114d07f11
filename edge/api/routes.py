"""The LAN API's route table: every route the edge serves, declared once.

Each line names the method, path, handler, who may call it (``edge.api.access``)
and what goes in and out.  ``create_app`` mounts this table (each handler
wrapped by its access check) and serves :func:`openapi_document`, built from
the same table: a route cannot be served without a rule or undocumented.
WebSocket, pages and the static folder are routes here too.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from edge.api import (
    routes_alerts,
    routes_auth,
    routes_door,
    routes_guest,
    routes_room_history,
    routes_rooms,
    routes_schedules,
    routes_shop,
    routes_sync,
    routes_tablets,
    ws,
)
from edge.api.access import (
    ADMIN,
    LOOPBACK_OR_STAFF,
    MANAGER,
    PUBLIC,
    ROOM,
    SIGNED_IN,
    STAFF,
    Route,
    auth_errors,
    requires,
    security,
)
from edge.api.keys import CORE, DATA_DIR, OPENAPI, SETTINGS
from edge.api.metrics import metrics_handler
from edge.api.models import (
    AuditQuery,
    CommandBody,
    CommandsQuery,
    DoorEventsQuery,
    DoorMembersQuery,
    HistoryQuery,
    LoginBody,
    NewUserBody,
    PairBody,
    UserPatchBody,
    WsQuery,
)
from edge.api.routes_door import (
    KEYPAD,
    KEYPAD_HEADER,
    ConsentBody,
    PinBody,
    SetPinBody,
    UnlockBody,
    WithdrawBody,
)
from edge.api.shop_models import (
    ApproveBody,
    CounterOrderBody,
    CounterRequestBody,
    MembersQuery,
    OrdersQuery,
    RequestsQuery,
)
from edge.api.shop_schemas import shop_schemas, tighten
from edge.core import EdgeCore
from edge.health import site_health
from edge.route_table import WEBSOCKET, DocPolicy, openapi
from edge.shop.inputs import (
    CatalogueQuery,
    CostInput,
    DeclineInput,
    OrderStatusInput,
    PaymentInput,
    RequestStatusInput,
)
from edge.supervisor import supervisor_for
from sync.oversell import ResolveInput

API_VERSION = "1"
ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


# -- the few handlers that belong to no area -------------------------------------------------
async def healthz(request: web.Request) -> web.Response:
    """200 only when every component, database, disk and link is well; the body
    names each part and its state, and ``problems`` lists what is not."""
    core: EdgeCore = request.app[CORE]
    ok, body = await site_health(core, supervisor_for(core), request.app[DATA_DIR])
    return web.json_response(body, status=200 if ok else 503)


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI].document())


def page(name: str) -> Any:
    """A page of ``web_dir``; FileResponse reads it in an executor, a missing one is a 404."""

    async def serve_page(request: web.Request) -> web.StreamResponse:
        path = request.app[SETTINGS].web_dir / name
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    serve_page.__name__ = "page_" + name.removesuffix(".html")
    return serve_page


async def _no_handler(request: web.Request) -> web.StreamResponse:
    raise web.HTTPNotFound()  # the static folder is served by aiohttp's static resource


HTML, TEXT = "text/html", "text/plain"
SHOP = "/api/v1/shop"
REQUEST = SHOP + "/concierge/requests/{request_id}"
MEMBER = "/api/v1/door/members/{member_id}"
r_auth, r_door, r_rooms, r_shop, r_tab = (
    routes_auth, routes_door, routes_rooms, routes_shop, routes_tablets
)  # fmt: skip

# fmt: off
ROUTES: tuple[Route, ...] = (
    # -- pages, health, metrics, this document ----------------------------------------------
    Route("GET", "/", page("dashboard.html"), PUBLIC, "Staff dashboard page", content=HTML),
    Route("GET", "/dashboard", page("dashboard.html"), PUBLIC, "Staff dashboard page",
          content=HTML),
    Route("GET", "/tablet", page("tablet.html"), PUBLIC, "Room tablet page", content=HTML),
    Route("GET", "/site/logo", routes_guest.site_logo, PUBLIC,
          "The spa's logo for the guest tablets ([site] logo); 404 when none",
          content="image/*", errors=(404,)),
    Route("GET", "/static/{path}", _no_handler, PUBLIC, "Static files of the pages",
          content=TEXT, static_dir=lambda app: app[SETTINGS].web_dir),
    Route("GET", "/healthz", healthz, PUBLIC,
          "Health of every component, database, the disk and each link", errors=(503,)),
    Route("GET", "/metrics", metrics_handler, LOOPBACK_OR_STAFF, "Prometheus metrics",
          content=TEXT),
    Route("GET", "/api/openapi.json", openapi_json, PUBLIC, "This document"),
    Route("GET", "/api/v1/ws", ws.websocket, SIGNED_IN,
          "WebSocket stream of state changes and events (tablets: their room only)",
          query=WsQuery, status=WEBSOCKET),
    Route("POST", "/api/v1/ws/ticket", ws.ws_ticket, SIGNED_IN,
          "A one-time WebSocket ticket, valid 30 s (the token never rides a URL)"),
    # -- sessions, staff accounts, audit ----------------------------------------------------
    Route("POST", "/api/v1/auth/login", r_auth.login, PUBLIC,
          "Log in; returns a token and sets the session cookie", LoginBody, errors=(401, 429)),
    Route("POST", "/api/v1/auth/logout", r_auth.logout, STAFF, "End the session"),
    Route("GET", "/api/v1/me", r_auth.me, SIGNED_IN, "Who the token belongs to"),
    Route("GET", "/api/v1/users", r_auth.list_users, ADMIN, "List staff accounts"),
    Route("POST", "/api/v1/users", r_auth.create_user, ADMIN, "Create a staff account",
          NewUserBody, status=201, errors=(409,)),
    Route("PATCH", "/api/v1/users/{username}", r_auth.update_user, ADMIN,
          "Change password, role or disabled", UserPatchBody, errors=(409,)),
    Route("DELETE", "/api/v1/users/{username}", r_auth.delete_user, ADMIN,
          "Delete a staff account", errors=(409,)),
    Route("GET", "/api/v1/audit", r_auth.audit_log, MANAGER, "Audit log, newest first",
          query=AuditQuery),
    # -- rooms, scenes, devices ------------------------------------------------------------
    Route("GET", "/api/v1/rooms", r_rooms.list_rooms, SIGNED_IN,
          "Rooms with live device state (a tablet: its own room)"),
    Route("GET", "/api/v1/rooms/{room_id}", r_rooms.get_room, ROOM, "One room"),
    Route("GET", "/api/v1/rooms/{room_id}/scenes", r_rooms.list_scenes, ROOM,
          "Scenes of a room"),
    Route("POST", "/api/v1/rooms/{room_id}/scenes/{scene_id}/activate", r_rooms.activate_scene,
          ROOM, "Run a scene (tablets: not one that unlocks a door)", errors=(502,)),
    Route("POST", "/api/v1/rooms/{room_id}/devices/{device_id}/command", r_rooms.device_command,
          ROOM, "Command one device within its limits (tablets: lights and climate only)",
          CommandBody, errors=(502, 504)),
    Route("GET", "/api/v1/commands", r_rooms.command_log, STAFF, "Command log, newest first",
          query=CommandsQuery),
    # -- tablets ---------------------------------------------------------------------------
    Route("GET", "/api/v1/rooms/{room_id}/guest", routes_guest.guest_view, ROOM,
          "Guest tablet extras: site name, languages, sauna ready-in and session left"),
    Route("GET", "/api/v1/rooms/{room_id}/history", routes_room_history.room_history, STAFF,
          "Temperature and humidity of the room's climate devices and sensors over hours",
          query=HistoryQuery),
    # -- schedules and alerts ---------------------------------------------------------------
    Route("GET", "/api/v1/schedules", routes_schedules.list_schedules, STAFF,
          "Scene schedules with their next run, and the recent runs", errors=(503,)),
    Route("PUT", "/api/v1/schedules/{schedule_id}", routes_schedules.put_schedule, MANAGER,
          "Add or change a dashboard schedule; body: a [[schedules]] entry",
          errors=(400, 409, 422)),
    Route("DELETE", "/api/v1/schedules/{schedule_id}", routes_schedules.delete_schedule,
          MANAGER, "Remove a dashboard schedule", errors=(404, 409)),
    Route("GET", "/api/v1/alerts", routes_alerts.list_alerts, STAFF,
          "Recent critical alerts and the channels' delivery state"),
    Route("POST", "/api/v1/alerts/{alert_id}/ack", routes_alerts.ack_alert, STAFF,
          "Acknowledge an alert: no more repeats", errors=(404, 422)),
    Route("POST", "/api/v1/rooms/{room_id}/pairing-codes", r_tab.create_pairing_code, STAFF,
          "One-time tablet pairing code for a room", status=201),
    Route("POST", "/api/v1/tablets/pair", r_tab.pair_tablet, PUBLIC,
          "Trade a pairing code for a room token", PairBody, status=201, errors=(429,)),
    Route("GET", "/api/v1/tablets", r_tab.list_tablets, STAFF, "Paired tablets"),
    Route("DELETE", "/api/v1/tablets/{tablet_id}", r_tab.revoke_tablet, STAFF,
          "Revoke a tablet"),
    # -- the shop: products, members, pickup orders, concierge requests ---------------------
    Route("GET", SHOP + "/rules", r_shop.shop_rules, STAFF,
          "Order and request statuses, their next steps, and membership tiers",
          response="ShopRules"),
    Route("GET", SHOP + "/overview", r_shop.overview, STAFF,
          "Queue counts, stock alerts and the tax rate", response="ShopOverview"),
    Route("GET", SHOP + "/products", r_shop.list_products, STAFF,
          "Active products with in-stock and low-stock flags", query=CatalogueQuery,
          response="ProductPage"),
    Route("GET", SHOP + "/products/low-stock", r_shop.low_stock, STAFF,
          "Products at or below their low-stock level, emptiest first", response="ProductList"),
    Route("GET", SHOP + "/members", r_shop.list_members, STAFF,
          "Shop members (name, tier, active) for the member picker", query=MembersQuery,
          response="MemberList"),
    Route("GET", SHOP + "/orders", r_shop.list_orders, STAFF, "The pickup queue, newest first",
          query=OrdersQuery, response="OrderPage"),
    Route("POST", SHOP + "/orders", r_shop.create_order, STAFF,
          "Create a pickup order at the counter (member prices while the membership is active)",
          CounterOrderBody, status=201, response="QueuedOrder", errors=(404, 409)),
    Route("GET", SHOP + "/orders/{order_id}", r_shop.get_order, STAFF, "One order",
          response="QueuedOrder"),
    Route("POST", SHOP + "/orders/{order_id}/status", r_shop.order_status, STAFF,
          "Move an order on: processing, ready, completed", OrderStatusInput,
          response="QueuedOrder", errors=(409,)),
    Route("POST", SHOP + "/orders/{order_id}/cancel", r_shop.cancel_order, STAFF,
          "Cancel a pending or processing order; its stock comes back", response="QueuedOrder",
          errors=(409,)),
    Route("POST", SHOP + "/orders/{order_id}/payment", r_shop.order_payment, STAFF,
          "Record the payment reference", PaymentInput, response="QueuedOrder", errors=(409,)),
    Route("GET", SHOP + "/concierge/requests", r_shop.list_requests, STAFF,
          "The concierge queue, newest first", query=RequestsQuery, response="RequestPage"),
    Route("POST", SHOP + "/concierge/requests", r_shop.create_request, STAFF,
          "Take a concierge request at the counter (Premium and Unlimited members)",
          CounterRequestBody, status=201, response="QueuedRequest", errors=(404, 409)),
    Route("GET", REQUEST, r_shop.get_request, STAFF, "One concierge request",
          response="QueuedRequest"),
    Route("POST", REQUEST + "/approve", r_shop.approve_request, STAFF,
          "Approve a pending request", ApproveBody, response="QueuedRequest", errors=(409,)),
    Route("POST", REQUEST + "/decline", r_shop.decline_request, STAFF,
          "Decline a pending request, with the reason told to the member", DeclineInput,
          response="QueuedRequest", errors=(409,)),
    Route("POST", REQUEST + "/cost", r_shop.set_request_cost, STAFF,
          "Set the actual cost (the response shows within_budget)", CostInput,
          response="QueuedRequest", errors=(409,)),
    Route("POST", REQUEST + "/verify-age", r_shop.verify_age, STAFF,
          "Record that staff saw ID (needed before alcohol is handed over)",
          response="QueuedRequest", errors=(409,)),
    Route("POST", REQUEST + "/status", r_shop.request_status, STAFF,
          "Move a request on: processing, ready, completed", RequestStatusInput,
          response="QueuedRequest", errors=(409,)),
    Route("POST", REQUEST + "/cancel", r_shop.cancel_request, STAFF,
          "Cancel a pending, approved or processing request", response="QueuedRequest",
          errors=(409,)),
    # -- the door --------------------------------------------------------------------------
    Route("GET", "/api/v1/door-events", r_door.door_events, STAFF,
          "Door events, lock commands by staff and door alerts, newest first",
          query=DoorEventsQuery),
    Route("GET", "/api/v1/door/status", r_door.door_status, STAFF,
          "Door camera, vision and cooldown state", errors=(404,)),
    Route("POST", "/api/v1/door/unlock", r_door.remote_unlock, STAFF,
          "Staff remote unlock (audited; reason required)", UnlockBody, errors=(404, 502)),
    Route("POST", "/api/v1/door/pin", r_door.keypad_pin, KEYPAD,
          f"Member PIN from the door keypad ({KEYPAD_HEADER} header; throttled)", PinBody,
          errors=(404, 429)),
    Route("GET", "/api/v1/door/members", r_door.members, STAFF,
          "Members with face-access consent status", query=DoorMembersQuery, errors=(404,)),
    Route("GET", MEMBER + "/consent", r_door.consent_history, STAFF,
          "Consent history of a member"),
    Route("POST", MEMBER + "/consent", r_door.grant_consent, STAFF,
          "Record consent to face access (staff witness)", ConsentBody, status=201),
    Route("POST", MEMBER + "/consent/withdraw", r_door.withdraw_consent, STAFF,
          "Withdraw consent; templates destroyed at once", WithdrawBody),
    Route("PUT", MEMBER + "/pin", r_door.set_pin, STAFF, "Set the member's door PIN",
          SetPinBody),
    Route("POST", MEMBER + "/enroll", r_door.enroll, STAFF,
          "Enroll from 3-5 photos (multipart 'photos'); needs active consent", status=201,
          errors=(400, 409, 422)),
    Route("GET", "/api/v1/members/{member_id}/export", r_door.export_member, MANAGER,
          "Member data export: consent, enrollments, door events (no templates)"),
    # -- cloud sync ------------------------------------------------------------------------
    Route("GET", "/api/v1/sync/status", routes_sync.status, STAFF,
          "Cloud sync status: last success, queue depth, errors, attention items"),
    Route("POST", "/api/v1/sync/attention/{id}/resolve", routes_sync.resolve, STAFF,
          "Resolve an oversell in one step: restock, cancel an order, substitute",
          ResolveInput, errors=(409,)),
)
# fmt: on

_PATH_PARAMS: dict[str, dict[str, Any]] = {
    "path": {"type": "string"},
    "member_id": {"type": "string", "maxLength": 64},
    "id": {"type": "string", "pattern": r"^[0-9]{1,18}$"},
}


def _path_param(name: str) -> dict[str, Any]:
    return _PATH_PARAMS.get(name, {"type": "string", "pattern": ID_PATTERN})


class OpenApi:
    """``/api/openapi.json``, built on its first request: building it builds
    every model's schema, which an idle daemon need not hold (defer_build)."""

    def __init__(self, site_id: str) -> None:
        self.site_id = site_id
        self._document: dict[str, Any] | None = None

    def document(self) -> dict[str, Any]:
        if self._document is None:
            self._document = openapi_document(self.site_id)
        return self._document


def openapi_document(site_id: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document served at ``/api/openapi.json``, built from ``ROUTES``."""
    policy = DocPolicy(
        title="CoreSync Edge LAN API",
        version=API_VERSION,
        description=f"Room tablets and staff tools for site {site_id}. "
        'Errors: {"error": {"code", "message", "field"}}.',
        security_schemes={
            "bearer": {"type": "http", "scheme": "bearer"},
            "cookie": {"type": "apiKey", "in": "cookie", "name": "coresync_session"},
            "keypad": {"type": "apiKey", "in": "header", "name": KEYPAD_HEADER},
        },
        security=security,
        requires=requires,
        auth_errors=auth_errors,
        path_param=_path_param,
        components=shop_schemas,
        finish_schemas=tighten,
        servers=("/",),
    )
    return openapi(ROUTES, policy)
