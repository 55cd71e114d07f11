"""Property-based run of the cloud API against its own OpenAPI document: no 5xx, ever.

The server runs on a real port in a thread (SQLite and PostgreSQL, demo data);
each operation — the sync routes included — is called with the right kind of
credential for its route, bounded in examples.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from cloud_api.admin_routes import ADMIN_ROUTES
from cloud_api.app import build_app
from cloud_api.auth import Auth
from cloud_api.demo import STAFF, seed
from cloud_api.openapi import build_openapi
from cloud_api.routes import ROUTES
from cloud_api.sync_routes import SYNC_ROUTES
from edge.shop.testing import make_shop, postgres_unreachable
from tests.parts import missing

ALL_ROUTES = ROUTES + ADMIN_ROUTES + SYNC_ROUTES
AUTH_BY_OPERATION = {(r.method, r.full_path): r.auth for r in ALL_ROUTES}


class ServerThread:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="cloud-api-under-test", daemon=True)

    def _run(self) -> None:
        from aiohttp import web

        asyncio.set_event_loop(self.loop)
        runner = web.AppRunner(self.app)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = runner.addresses[0][1]
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())
        self.loop.close()

    def __enter__(self) -> ServerThread:
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    if request.param == "postgres" and (why := postgres_unreachable()):
        missing("PostgreSQL", why)
    with make_shop(request.param, tmp_path_factory.mktemp("schemathesis")) as shop:
        auth = Auth(shop.db)
        auth.migrate()
        seed(shop, auth)
        staff_token, _, _ = auth.login(STAFF[0], STAFF[2])
        node_secret = auth.register_node("edge-1")
        with ServerThread(build_app(shop, auth)) as srv:
            yield {
                "base": f"http://127.0.0.1:{srv.port}",
                "member": "Bearer demo-member-ava",
                "staff": f"Bearer {staff_token}",
                "node": f"Node edge-1:{node_secret}",
            }


def _fuzz(operation: Any, base_url: str, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=12,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, headers=headers)
        case.validate_response(response, checks=(not_a_server_error,))

    run()


def test_no_server_errors(server: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_dict(build_openapi(ALL_ROUTES))
    checked = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        level = AUTH_BY_OPERATION.get((operation.method.upper(), operation.path), "any")
        who = {"member": "member", "any": "member", "node": "node"}.get(level, "staff")
        _fuzz(operation, server["base"], {"Authorization": server[who]})
        checked += 1
    assert checked == len(ALL_ROUTES)
