"""The security headers every LAN API response carries, pages and API alike.

Set by create_app's middleware on each response a handler returns (or an
error it raised), and by a handler that prepares its own response before
returning it (the WebSocket upgrade).  Not an ``on_response_prepare`` signal:
that was a coroutine and five header writes on every request.
"""

from __future__ import annotations

from aiohttp import web

# No versions in Server: they only help someone shopping for exploits.
SERVER = "coresync-edge"
COMMON = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
)
API = (*COMMON, ("Cache-Control", "no-store"))
PAGES = (
    *COMMON,
    (
        "Content-Security-Policy",
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
        "frame-ancestors 'none'",
    ),
)


def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Before ``response`` is prepared; a header the handler set is kept."""
    headers = response.headers
    headers["Server"] = SERVER
    for name, value in API if request.path.startswith("/api/") else PAGES:
        headers.setdefault(name, value)
