"""The loop guard itself: a blocking call in an async route handler of the
real LAN API is caught with its stack, whatever the machine's load; the same
handler without it passes. (tests/loop_guard.py; every async test runs in it.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from edge.api import create_app
from tests.conftest import Broker
from tests.edge_site import start_edge
from tests.loop_guard import LoopGuard
from tests.test_api_support import SITE, fast_settings


@pytest.fixture
async def app_with_probe(mqtt_broker: Broker, tmp_path: Path) -> AsyncIterator[web.Application]:
    from edge.config import parse_config

    cfg = parse_config(
        SITE.format(site="guard", host=mqtt_broker.host, port=mqtt_broker.port, base="guard-z2m")
    )
    zigbee, service, core = await start_edge(cfg, mqtt_broker, tmp_path)
    app = create_app(core, data_dir=tmp_path, settings=fast_settings())

    async def sleepy(request: web.Request) -> web.Response:
        if request.query.get("block"):
            time.sleep(0.2)  # noqa: ASYNC251 - the blocking call the guard must catch
        else:
            await asyncio.sleep(0.2)
        return web.json_response({"ok": True})

    # Reached through the API's own middlewares (errors, auth, metrics).
    app.router.add_post("/api/v1/auth/login-probe", sleepy)
    try:
        yield app
    finally:
        await service.stop()
        await zigbee.stop()


@pytest.mark.no_loop_guard  # it runs a guard of its own
async def test_blocking_call_in_a_route_handler_is_caught_with_its_stack(
    app_with_probe: web.Application,
) -> None:
    async with TestClient(TestServer(app_with_probe)) as client:
        with LoopGuard() as clean:
            resp = await client.post("/api/v1/auth/login-probe")
        assert resp.status == 200
        with LoopGuard() as guard:
            resp = await client.post("/api/v1/auth/login-probe?block=1")
        # The guard raised at the call (the API's error middleware made it a
        # 500) and recorded it, so a test fails even where code swallows errors.
        assert resp.status == 500
    assert clean.calls == [] and clean.report() is None
    assert [call.function for call in guard.calls] == ["time.sleep"]
    report = guard.report()
    assert report is not None
    assert "blocking call to time.sleep on the event loop" in report
    # The stack names the offending line and the project code it ran under.
    assert "time.sleep(0.2)" in report and "in sleepy" in report
    assert "in request_timing" in report  # the API's one middleware
