"""LAN API for room tablets and staff: REST + WebSocket + pages + zeroconf.

``create_app(core, data_dir=...)`` builds the aiohttp application;
``ApiServer(core, data_dir=...).run()`` serves it until cancelled.
"""

from edge.api.app import create_app
from edge.api.server import ApiServer
from edge.api.settings import ApiSettings

__all__ = ["ApiServer", "ApiSettings", "create_app"]
