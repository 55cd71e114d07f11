"""Property-based run of the LAN API against its own OpenAPI document: no 5xx, ever.

A real site (Mosquitto, simulated Zigbee2MQTT devices, real SQLite) runs
under EdgeService with the API on a real port, in a thread with its own event
loop; schemathesis reads ``/api/openapi.json`` from it and calls every
operation with generated valid and invalid requests, once as an admin and
once as a paired room tablet.  Every 5xx is collected and reported with a
curl line to replay it.

Its pytest plugin does not work in this tree, so the test drives
schemathesis's Python API directly, as tests/test_cloud_schemathesis.py does.
State-changing calls are real (scenes run, the simulated door unlocks);
the fuzzing admin is its own account and its own session so that fuzzed
logouts, password changes and deletes of ``admin`` cannot end it.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

from tests.conftest import Broker
from tests.test_api_support import ApiSite, start_api_site, stop_api_site

pytestmark = pytest.mark.slow

T = TypeVar("T")

FUZZ_ADMIN = ("fuzz-admin", "fuzz-admin-password-1")
# Examples per operation, generation mode and real path; API_FUZZ_EXAMPLES=200 digs deeper.
EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "12"))
LOGOUT = "/api/v1/auth/logout"
PATH_PARAM = re.compile(r"{(\w+)}")


class SiteThread:
    """The API site on its own event loop in a thread, so sync schemathesis can call it."""

    def __init__(self, broker: Broker, tmp: Path) -> None:
        self.broker = broker
        self.tmp = tmp
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="lan-api-under-test")
        self.site: ApiSite | None = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def __enter__(self) -> ApiSite:
        self.thread.start()
        self.site = self.run(start_api_site(self.broker, self.tmp))
        return self.site

    def __exit__(self, *exc: object) -> None:
        try:
            if self.site is not None:
                self.run(stop_api_site(self.site))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


def real_path_values(site: ApiSite, spare_tablet: str) -> list[dict[str, str]]:
    """Path parameters that exist, so bodies and queries reach the handlers behind the 404s."""
    values: list[dict[str, str]] = [{"path": "common.js"}, {"tablet_id": spare_tablet}]
    values += [{"username": name} for name in ("staff1", "manager1", "admin")]
    for room in site.core.rooms():
        values.append({"room_id": room.id})
        values += [{"room_id": room.id, "device_id": d.id} for d in room.config.devices]
        values += [{"room_id": room.id, "scene_id": sc.id} for sc in room.config.scenes]
    return values


async def fuzz_principals(site: ApiSite) -> dict[str, str]:
    """Tokens of a dedicated admin account and of a tablet paired with room-a."""
    resp = await site.client.post(
        "/api/v1/users",
        json={"username": FUZZ_ADMIN[0], "password": FUZZ_ADMIN[1], "role": "admin"},
        headers=site.auth("admin"),
    )
    assert resp.status == 201, await resp.text()
    tablet = await site.pair("room-a", "fuzz-tablet")
    spare = await site.pair("room-b", "fuzz-spare")
    return {
        "admin": await site.login(*FUZZ_ADMIN),
        # Fuzzed logouts end this session, not the one the run goes on with.
        "admin-logout": await site.login(*FUZZ_ADMIN),
        "tablet": str(tablet["token"]),
        "spare-tablet-id": str(spare["tablet_id"]),
    }


@dataclass
class Live:
    base_url: str
    tokens: dict[str, str]
    thread: SiteThread
    site: ApiSite
    path_values: list[dict[str, str]]
    server_errors: list[str] = field(default_factory=list)
    # (operation, status) -> count; shows what the run reached.
    statuses: dict[tuple[str, int], int] = field(default_factory=dict)


@pytest.fixture(scope="module")
def live(mqtt_broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    thread = SiteThread(mqtt_broker, tmp_path_factory.mktemp("api-schemathesis"))
    with thread as site:
        tokens = thread.run(fuzz_principals(site))
        base_url = str(site.client.make_url("")).rstrip("/")
        path_values = real_path_values(site, tokens["spare-tablet-id"])
        yield Live(base_url, tokens, thread, site, path_values)


def fuzz_operation(
    live: Live,
    operation: Any,
    mode: GenerationMode,
    headers: dict[str, str],
    path_parameters: dict[str, str] | None = None,
) -> int:
    """Call ``operation`` with generated cases; 5xx go to ``live.server_errors``."""
    calls = 0
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        nonlocal calls
        response = case.call(base_url=live.base_url, headers=headers, timeout=15)
        calls += 1
        key = (operation.label, response.status_code)
        live.statuses[key] = live.statuses.get(key, 0) + 1
        if response.status_code >= 500:
            curl = case.as_curl_command(headers=headers)
            live.server_errors.append(
                f"{operation.label} [{mode.value}] -> {response.status_code} "
                f"{response.text[:300]}\n    {curl}"
            )

    try:
        run()
    except Unsatisfiable:
        # No parameters and no body: there is no invalid request to make.
        if mode is GenerationMode.POSITIVE:
            raise
    return calls


def fuzz_all(live: Live, who: str) -> int:
    schema = schemathesis.openapi.from_url(f"{live.base_url}/api/openapi.json")
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        token = live.tokens.get(f"{who}-logout", live.tokens[who])
        if operation.path != LOGOUT:
            token = live.tokens[who]
        headers = {"Authorization": f"Bearer {token}"}
        names = set(PATH_PARAM.findall(operation.path))
        anchored = [v for v in live.path_values if names and set(v) == names]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            calls += fuzz_operation(live, operation, mode, headers)
            for values in anchored:
                calls += fuzz_operation(live, operation, mode, headers, values)
    return calls


def raw_request(live: Live, method: str, path: str, headers: dict[str, bytes]) -> int:
    """One request with header bytes sent as they are (requests would re-encode them)."""
    host, port = live.base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    try:
        conn.putrequest(method, path)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.putheader("Content-Length", "0")
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


def still_authenticated(live: Live, who: str) -> int:
    async def me() -> int:
        resp = await live.site.client.get(
            "/api/v1/me", headers={"Authorization": f"Bearer {live.tokens[who]}"}
        )
        return resp.status

    return live.thread.run(me())


@pytest.mark.parametrize("who", ["admin", "tablet"])
def test_no_server_errors(live: Live, who: str) -> None:
    live.server_errors.clear()
    live.statuses.clear()
    calls = fuzz_all(live, who)
    assert calls > 100, f"only {calls} calls: the document lost its operations?"
    # Requests must get past auth and validation into the handlers, devices included.
    reached = {op for (op, status), _ in live.statuses.items() if 200 <= status < 300}
    assert "POST /api/v1/rooms/{room_id}/scenes/{scene_id}/activate" in reached
    assert "POST /api/v1/rooms/{room_id}/devices/{device_id}/command" in reached
    assert not live.server_errors, f"{len(live.server_errors)} server errors:\n" + "\n".join(
        live.server_errors
    )
    # A run that logged itself out would have fuzzed nothing but 401s.
    assert still_authenticated(live, who) == 200


def test_requests_schemathesis_does_not_make(live: Live) -> None:
    """Header bytes that are not UTF-8 and over-long static names: 4xx, not 500 (found by
    hand next to the fuzzing; each was a 500 before its fix)."""
    session = f"coresync_session={live.tokens['admin']}".encode()
    cases: list[tuple[str, str, dict[str, bytes], int]] = [
        ("GET", "/api/v1/me", {"Authorization": b"Bearer \xff\xfe"}, 401),
        ("GET", "/api/v1/me", {"Authorization": b"Bearer css_\xed\xa0\x80"}, 401),
        ("GET", "/api/v1/me", {"Cookie": b"coresync_session=css_\xff"}, 401),
        (
            "POST",
            "/api/v1/auth/logout",
            {"Cookie": session + b"; coresync_csrf=\xe9", "X-CSRF-Token": b"\xe9"},
            403,
        ),
        ("GET", "/static/" + "a" * 5000, {}, 404),
    ]
    got = [
        (method, path[:40], raw_request(live, method, path, headers))
        for method, path, headers, _ in cases
    ]
    assert got == [(method, path[:40], status) for method, path, _, status in cases]
