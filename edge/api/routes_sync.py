"""Sync status for staff: last success, queue depth, last error, items
needing attention (oversells, cancel-vs-pickup races, rejected changes).

``GET /api/v1/sync/status`` answers on a stand-alone spa too (``enabled``
false), so the dashboard can say so instead of failing.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from edge.api.auth import principal
from edge.api.errors import ApiError
from edge.api.keys import BODY, CORE
from edge.api.routes_shop import change
from edge.core import EdgeCore
from sync import sync_status
from sync.oversell import ResolveInput, resolve_oversell


async def status(request: web.Request) -> web.Response:
    core: EdgeCore = request.app[CORE]
    cloud = core.config.cloud
    body: dict[str, Any] = {
        "enabled": cloud is not None,
        "cloud": cloud.base_url if cloud is not None else None,
        "node_id": cloud.node_id if cloud is not None else None,
    }
    if core.shop is not None:
        body.update(await core.run_shop(sync_status))
    return web.json_response(body, dumps=_dumps)


async def resolve(request: web.Request) -> web.Response:
    """One step for an oversell: restock, cancel an order or note a substitute, and resolve."""
    who = principal(request)
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError("invalid_field", "id: must be a positive integer", field="id")
    r: ResolveInput = request[BODY]
    item = await change(request, "sync.resolve", f"attention:{raw}",
                        lambda shop: resolve_oversell(shop, int(raw), r, f"staff:{who.id}"),
                        {"action": r.action})  # fmt: skip
    return web.json_response(item.to_json(), dumps=_dumps)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=str)  # timestamps and decimals as text
