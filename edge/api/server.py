"""``ApiServer``: serves the LAN API until cancelled and advertises it with
zeroconf as ``_coresync._tcp.local.`` so tablets find the controller."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from edge.api.app import create_app
from edge.api.routes import API_VERSION
from edge.api.settings import ApiSettings
from edge.core import EdgeCore

if TYPE_CHECKING:  # zeroconf is imported when a site advertises (api.zeroconf)
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

log = logging.getLogger(__name__)

SERVICE_TYPE = "_coresync._tcp.local."
BASE_PATH = "/api/v1"
SHUTDOWN_GRACE_S = 1.0


def service_info(site_id: str, port: int, addresses: list[str]) -> AsyncServiceInfo:
    from zeroconf.asyncio import AsyncServiceInfo

    host = socket.gethostname().split(".")[0] or "coresync"
    return AsyncServiceInfo(
        SERVICE_TYPE,
        f"CoreSync {site_id}.{SERVICE_TYPE}",
        port=port,
        properties={"site_id": site_id, "api_version": API_VERSION, "base_path": BASE_PATH},
        server=f"{host}-{site_id}.local.",
        parsed_addresses=addresses,
    )


def lan_addresses() -> list[str]:
    """IPv4 addresses to advertise; loopback only when there is nothing else."""
    found: set[str] = set()
    with contextlib.suppress(OSError):
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            found.add(str(info[4][0]))
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))  # no packet is sent; picks the LAN interface
        found.add(s.getsockname()[0])
    lan = sorted(a for a in found if not a.startswith("127."))
    return lan or ["127.0.0.1"]


def bound_port(site: web.TCPSite) -> int:
    # aiohttp has no public accessor for the port picked when asked for port 0.
    server = site._server
    sockets = getattr(server, "sockets", None)
    if not sockets:
        raise RuntimeError("the API socket is not bound")
    return int(sockets[0].getsockname()[1])


class ApiServer:
    """Run with ``await server.run()`` as one supervised task; cancel to stop."""

    def __init__(
        self, core: EdgeCore, *, data_dir: Path, settings: ApiSettings | None = None
    ) -> None:
        self.core = core
        self.settings = settings or ApiSettings()
        self.app = create_app(core, data_dir=data_dir, settings=self.settings)
        self.port: int | None = None
        self._ready = asyncio.Event()

    async def ready(self) -> int:
        """Wait until the server listens; returns the port."""
        await self._ready.wait()
        assert self.port is not None
        return self.port

    @property
    def url(self) -> str:
        host = self.settings.host if self.settings.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"http://{host}:{self.port}/"

    async def run(self) -> None:
        # In-flight requests get SHUTDOWN_GRACE_S to finish when the daemon stops
        # (WebSockets are closed first, in create_app's on_shutdown).
        runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_S
        )
        await runner.setup()
        zc: AsyncZeroconf | None = None
        info: AsyncServiceInfo | None = None
        try:
            site = web.TCPSite(runner, self.settings.host, self.settings.port)
            await site.start()
            self.port = bound_port(site)
            log.info("LAN API listening on %s", self.url)
            print(f"coresync-edge: LAN API at {self.url} (tablets: {self.url}tablet)", flush=True)
            if self.settings.zeroconf:
                zc, info = await self._advertise()
            self._ready.set()
            await asyncio.Event().wait()  # until cancelled
        finally:
            if zc is not None:
                with contextlib.suppress(Exception):
                    if info is not None:
                        # The returned task sends the goodbye packets; close would cut it short.
                        await (await zc.async_unregister_service(info))
                await zc.async_close()
            await runner.cleanup()
            log.info("LAN API stopped")

    async def _advertise(self) -> tuple[AsyncZeroconf | None, AsyncServiceInfo | None]:
        assert self.port is not None
        # Resolving the host name may wait on DNS: off the loop.  So is the
        # first import of zeroconf (it reads its modules from disk).
        await asyncio.to_thread(importlib.import_module, "zeroconf.asyncio")
        addresses = await asyncio.get_running_loop().run_in_executor(None, lan_addresses)
        info = service_info(self.core.site_id, self.port, addresses)
        from zeroconf import IPVersion
        from zeroconf.asyncio import AsyncZeroconf

        zc = AsyncZeroconf(ip_version=IPVersion.V4Only)
        try:
            await (await zc.async_register_service(info, allow_name_change=True))
        except Exception as exc:
            log.warning("zeroconf advertisement failed (%s); tablets need the URL", exc)
            await zc.async_close()
            return None, None
        log.info("advertised %s on port %d", info.name, self.port)
        return zc, info
