"""LAN API for room tablets and staff: REST + WebSocket + pages + zeroconf.

``create_app(core, data_dir=...)`` builds the aiohttp application;
``ApiServer(core, data_dir=...).run()`` serves it until cancelled.

The names are imported lazily: the site config imports ``edge.api.settings``
while ``edge.api.app`` imports the core, which imports the site config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.api.app import create_app
    from edge.api.server import ApiServer
    from edge.api.settings import ApiSettings

__all__ = ["ApiServer", "ApiSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from edge.api.app import create_app

        return create_app
    if name == "ApiServer":
        from edge.api.server import ApiServer

        return ApiServer
    if name == "ApiSettings":
        from edge.api.settings import ApiSettings

        return ApiSettings
    raise AttributeError(name)
