"""Typed keys of the API's application and request storage."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from edge.api.auth import Auth, Principal
    from edge.api.metrics import Metrics
    from edge.api.routes import OpenApi
    from edge.api.settings import ApiSettings
    from edge.api.ws import WsHub
    from edge.core import EdgeCore

CORE: web.AppKey[EdgeCore] = web.AppKey("core")
SETTINGS: web.AppKey[ApiSettings] = web.AppKey("settings")
AUTH: web.AppKey[Auth] = web.AppKey("auth")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
WS_HUB: web.AppKey[WsHub] = web.AppKey("ws_hub")
DATA_DIR: web.AppKey[Path] = web.AppKey("data_dir")
OPENAPI: web.AppKey[OpenApi] = web.AppKey("openapi")
PRINCIPAL: web.RequestKey[Principal | None] = web.RequestKey("principal")
# A request's body and query string, parsed by its route's declared models (access.guarded).
BODY: web.RequestKey[Any] = web.RequestKey("body")
QUERY: web.RequestKey[Any] = web.RequestKey("query")
