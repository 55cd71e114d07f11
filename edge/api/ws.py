"""WebSocket stream of state changes and events (``GET /api/v1/ws``).

One hub task reads the event bus, encodes each event once, and offers the
same bytes to every client allowed to see it (sent as one text frame each,
no per-client encoding or compression): staff see everything, a tablet only its own room
and never lock devices.  Each client has a bounded queue; a client too slow
to keep up loses its oldest events rather than slowing the others.  The
``hello`` carries the rooms' views from the shared cache (edge.room_views).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from drivers.model import DeviceKind
from edge.api.auth import WS_TICKET_TTL_S, Principal, principal
from edge.api.errors import ApiError
from edge.api.headers import security_headers
from edge.api.keys import AUTH, WS_HUB
from edge.api.metrics import Metrics
from edge.api.routes_rooms import audience
from edge.core import EdgeCore
from edge.events import Event
from edge.room_views import TABLET_KINDS, encode

log = logging.getLogger(__name__)

CLIENT_QUEUE = 256
ALERTS_KEPT = 200
CLOSE_REVOKED = 4401
PONG = b'{"type":"pong"}'


class WsClient:
    def __init__(self, who: Principal, ws: web.WebSocketResponse) -> None:
        self.who = who
        self.ws = ws
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(CLIENT_QUEUE)
        self.dropped = 0

    def offer(self, text: bytes | None) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(text)


class WsHub:
    def __init__(self, core: EdgeCore, metrics: Metrics) -> None:
        self.core = core
        self.metrics = metrics
        self.clients: set[WsClient] = set()
        self._alerts: deque[dict[str, Any]] = deque(maxlen=ALERTS_KEPT)
        self._task: asyncio.Task[None] | None = None
        self._kinds = {
            f"{room.id}/{cfg.id}": cfg.kind for room in core.rooms() for cfg in room.config.devices
        }

    def start(self) -> None:
        if self._task is None:
            subscription = self.core.events.subscribe(maxsize=5000)
            self._task = asyncio.create_task(self._run(subscription), name="api-ws-hub")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for client in list(self.clients):
            client.offer(None)

    async def close_all(self, within_s: float = 1.0) -> None:
        """Close every client's socket ("going away"), waiting at most ``within_s``."""
        clients = list(self.clients)
        if not clients:
            return
        closing = [
            asyncio.create_task(
                c.ws.close(code=WSCloseCode.GOING_AWAY, message=b"shutting down"),
                name="api-ws-close",
            )
            for c in clients
        ]
        _, pending = await asyncio.wait(closing, timeout=within_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*closing, return_exceptions=True)

    def recent_alerts(self) -> list[dict[str, Any]]:
        return list(self._alerts)

    def disconnect_tablet(self, tablet_id: str) -> None:
        for client in list(self.clients):
            if client.who.kind == "tablet" and client.who.id == tablet_id:
                client.offer(None)

    async def _run(self, subscription: Any) -> None:
        with subscription:
            async for event in subscription:
                try:
                    self._dispatch(event)
                except Exception:
                    log.exception("could not dispatch event %s", event.type)

    def _dispatch(self, event: Event) -> None:
        message = {
            "type": event.type,
            "room_id": event.room_id,
            "seq": event.seq,
            "ts": event.ts,
            "data": event.data,
        }
        if event.type == "alert":
            self._alerts.appendleft({"room_id": event.room_id, "ts": event.ts, **event.data})
        text = encode(message)
        for client in self.clients:
            if self.allowed(client.who, event):
                client.offer(text)

    def allowed(self, who: Principal, event: Event) -> bool:
        if who.kind == "staff":
            return True
        if event.room_id != who.room_id:
            return False
        device_id = event.data.get("device_id")
        if isinstance(device_id, str):
            kind = self._kinds.get(device_id, DeviceKind.LOCK)
            return kind in TABLET_KINDS
        return event.type != "alert" or "door" not in str(event.data.get("kind", ""))


async def websocket(request: web.Request) -> web.StreamResponse:
    who = principal(request)
    if who.via_cookie:
        # Cookies ride along on cross-site WebSocket handshakes: check the origin.
        origin = request.headers.get("Origin")
        if origin is not None and origin.split("://", 1)[-1] != request.host:
            raise ApiError("forbidden", "cross-origin WebSocket refused", field="Origin")
    hub: WsHub = request.app[WS_HUB]
    # No permessage-deflate: with it every frame is compressed again for each
    # tablet (its own zlib stream), so one event's same bytes cost a deflate
    # per tablet on the loop; events are a few hundred bytes on a LAN.
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=64 * 1024, compress=False)
    security_headers(request, ws)  # prepared here, not after the handler returns
    await ws.prepare(request)
    client = WsClient(who, ws)
    core = hub.core
    ids = [room.id for room in core.rooms() if who.kind == "staff" or room.id == who.room_id]
    rooms = core.views.encoded_list(ids, audience(who))
    hello = b'{"type":"hello","who":' + encode(who.public()) + b',"rooms":' + rooms + b"}"
    await ws.send_frame(hello, WSMsgType.TEXT)
    hub.clients.add(client)
    hub.metrics.ws_clients = len(hub.clients)
    writer = asyncio.create_task(_write(client), name=f"api-ws-writer-{who.kind}-{who.id}")
    try:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT and msg.data == "ping":
                client.offer(PONG)
            elif msg.type is WSMsgType.ERROR:
                break
    finally:
        hub.clients.discard(client)
        hub.metrics.ws_clients = len(hub.clients)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        await ws.close()
    return ws


async def _write(client: WsClient) -> None:
    while True:
        text = await client.queue.get()
        if text is None:
            await client.ws.close(code=CLOSE_REVOKED, message=b"revoked or shutting down")
            return
        try:
            await client.ws.send_frame(text, WSMsgType.TEXT)
        except ConnectionError:
            return


async def ws_ticket(request: web.Request) -> web.Response:
    """A one-time ticket for ``GET /api/v1/ws?ticket=``: a browser WebSocket
    cannot send the tablet's bearer header, and the token must not ride a URL."""
    who = principal(request)
    ticket = request.app[AUTH].issue_ws_ticket(who)
    return web.json_response({"ticket": ticket, "expires_in_s": WS_TICKET_TTL_S})
