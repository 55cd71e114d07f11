"""ApiServer as the daemon runs it: a real TCP port, zeroconf advertisement
that appears and disappears, clean cancellation."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from edge.api import ApiServer
from edge.api.server import SERVICE_TYPE
from tests.conftest import Broker
from tests.parts import missing
from tests.test_api_support import fast_settings, start_api_site, stop_api_site


async def test_server_serves_advertises_and_unregisters(
    mqtt_broker: Broker, tmp_path: Path
) -> None:
    site = await start_api_site(mqtt_broker, tmp_path)
    seen: dict[str, list[str]] = {"added": [], "removed": []}
    properties: dict[bytes, bytes | None] = {}
    browser_zc = AsyncZeroconf(ip_version=IPVersion.V4Only)
    found = asyncio.Event()
    gone = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()

    async def resolve(zc: Zeroconf, name: str) -> None:
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        if await info.async_request(zc, 3000):
            properties.update(info.properties)
        found.set()

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if site.core.site_id not in name:
            return  # another controller on this LAN
        if state_change is ServiceStateChange.Added:
            seen["added"].append(name)
            task = asyncio.get_running_loop().create_task(
                resolve(zeroconf, name), name="zeroconf-resolve"
            )
            tasks.add(task)
        elif state_change is ServiceStateChange.Removed:
            seen["removed"].append(name)
            gone.set()

    browser = AsyncServiceBrowser(browser_zc.zeroconf, SERVICE_TYPE, handlers=[on_change])
    server = ApiServer(site.core, data_dir=tmp_path, settings=fast_settings(zeroconf=True))
    run = asyncio.create_task(server.run(), name="api-server-under-test")
    try:
        port = await asyncio.wait_for(server.ready(), 10)
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/healthz") as resp,
        ):
            assert resp.status == 200
        try:
            await asyncio.wait_for(found.wait(), 8)
        except TimeoutError:
            missing(
                "multicast DNS",
                "no multicast DNS on this machine: the advertisement was sent but "
                "a browser on the same host never saw it",
            )
        assert properties[b"site_id"] == site.core.site_id.encode()
        assert properties[b"api_version"] == b"1"
        assert properties[b"base_path"] == b"/api/v1"
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        await asyncio.wait_for(gone.wait(), 8)
        assert seen["removed"] == seen["added"][:1]
        with pytest.raises(aiohttp.ClientConnectionError):
            async with aiohttp.ClientSession() as http:
                await http.get(f"http://127.0.0.1:{port}/healthz")
    finally:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        await browser.async_cancel()
        await browser_zc.async_close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await stop_api_site(site)


async def test_server_without_zeroconf_stops_on_cancel(mqtt_broker: Broker, tmp_path: Path) -> None:
    site = await start_api_site(mqtt_broker, tmp_path)
    server = ApiServer(site.core, data_dir=tmp_path, settings=fast_settings())
    run = asyncio.create_task(server.run(), name="api-server-under-test")
    try:
        port = await asyncio.wait_for(server.ready(), 10)
        async with aiohttp.ClientSession() as http:
            token = site.tokens["staff1"]
            headers: dict[str, Any] = {"Authorization": f"Bearer {token}"}
            async with http.get(f"http://127.0.0.1:{port}/api/v1/rooms", headers=headers) as r:
                assert r.status == 200
    finally:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        await stop_api_site(site)
    assert run.cancelled()
