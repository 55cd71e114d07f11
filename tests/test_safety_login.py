"""Login throttling that concurrency cannot bypass, and bounded hashing.

In process (the LAN API on a real site): 50 wrong passwords at once are
charged before any hash runs.  Against a real ``coresync-edge run`` with
production argon2id (64 MiB per hash): 50 concurrent bad logins from many
accounts keep the daemon's memory bounded and light commands answering.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from drivers.model import DeviceKind
from drivers.mqtt.simulator import SimulatedZigbeeDevice, ZigbeeSimulator
from edge.api.keys import AUTH
from edge.api.routes_auth import INITIAL_PASSWORD_FILE
from edge.demo.broker import free_port
from tests.conftest import Broker
from tests.edge_process import EdgeProcess
from tests.test_api_support import ApiSite, start_api_site, stop_api_site

LOGIN = "/api/v1/auth/login"


@pytest.fixture
async def api(mqtt_broker: Broker, tmp_path: Path) -> AsyncIterator[ApiSite]:
    s = await start_api_site(mqtt_broker, tmp_path, login_free_attempts=3)
    try:
        yield s
    finally:
        await stop_api_site(s)


async def test_fifty_concurrent_wrong_passwords_get_at_most_the_free_checks(api: ApiSite) -> None:
    auth = api.client.server.app[AUTH]
    checks_before = auth.guard.checks
    bad = {"username": "staff1", "password": "not-the-password"}
    responses = await asyncio.gather(*(api.client.post(LOGIN, json=bad) for _ in range(50)))
    statuses = [r.status for r in responses]
    checked = auth.guard.checks - checks_before
    # As many as 50 sequential attempts get: the 3 free ones, and the one
    # whose failure starts the lockout.
    assert 1 <= checked <= 3 + 1, f"{checked} password checks for 50 concurrent attempts"
    assert statuses.count(401) == checked, statuses
    assert statuses.count(429) == 50 - checked, statuses
    assert all(r.headers.get("Retry-After") for r in responses if r.status == 429)
    # The right password is refused too while locked out: no hash is spent on it.
    resp = await api.client.post(LOGIN, json={"username": "staff1", "password": "x" * 12})
    assert resp.status == 429
    assert auth.guard.checks - checks_before == checked


async def test_password_hashing_is_bounded(mqtt_broker: Broker, tmp_path: Path) -> None:
    site = await start_api_site(
        mqtt_broker, tmp_path, login_free_attempts=1000, login_hash_concurrency=2
    )
    try:
        auth = site.client.server.app[AUTH]
        real = auth.hasher
        running, peak, lock = [0], [0], threading.Lock()

        class CountingHasher:
            """The real hasher, counting how many checks run at once."""

            def hash(self, password: str) -> str:
                return str(real.hash(password))

            def verify(self, *args: Any) -> bool:
                with lock:
                    running[0] += 1
                    peak[0] = max(peak[0], running[0])
                try:
                    time.sleep(0.05)  # in the hashing thread: a slow hash
                    return bool(real.verify(*args))
                finally:
                    with lock:
                        running[0] -= 1

        auth.hasher = CountingHasher()
        bodies = [{"username": f"user{i}", "password": "wrong-password"} for i in range(50)]
        responses = await asyncio.gather(*(site.client.post(LOGIN, json=b) for b in bodies))
        statuses = {r.status for r in responses}
        assert statuses <= {401, 429}, statuses
        assert 1 <= peak[0] <= 2, f"{peak[0]} password hashes ran at once"
    finally:
        await stop_api_site(site)


SITE = """\
[site]
id = "{site}"
name = "Login load test"

[api]
host = "127.0.0.1"
port = {api_port}
zeroconf = false
login_free_attempts = 1000

[mqtt]
host = "{host}"
port = {port}
zigbee2mqtt_base = "{base}"

[[rooms]]
id = "room"
name = "Room"
  [[rooms.devices]]
  id = "light"
  kind = "light"
  type = "zigbee2mqtt"
  friendly_name = "light"
"""


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def test_concurrent_bad_logins_do_not_starve_the_daemon(
    mqtt_broker: Broker, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    port = free_port()
    config = tmp_path / "site.toml"
    base = f"login-z2m-{tag}"
    text = SITE.format(
        site=f"login-{tag}", api_port=port, host=mqtt_broker.host, port=mqtt_broker.port,
        base=base,
    )  # fmt: skip
    await asyncio.to_thread(config.write_text, text)
    zigbee = ZigbeeSimulator(
        mqtt_broker.host,
        mqtt_broker.port,
        base=base,
        devices=[SimulatedZigbeeDevice(DeviceKind.LIGHT, "light")],
    )
    await zigbee.start()
    daemon = EdgeProcess(config, tmp_path / "data")
    await daemon.start()
    url = f"http://127.0.0.1:{port}"
    try:
        assert daemon.proc is not None
        pid = daemon.proc.pid
        password_file = tmp_path / "data" / INITIAL_PASSWORD_FILE
        password = (await asyncio.to_thread(password_file.read_text)).strip()
        async with aiohttp.ClientSession() as http:
            resp = await http.post(url + LOGIN, json={"username": "admin", "password": password})
            assert resp.status == 200, await resp.text()
            headers = {"Authorization": f"Bearer {(await resp.json())['token']}"}
            http.cookie_jar.clear()

            async def light_command(level: int) -> float:
                t0 = time.monotonic()
                r = await http.post(
                    url + "/api/v1/rooms/room/devices/light/command",
                    json={"on": True, "brightness": level},
                    headers=headers,
                )
                assert r.status == 200, await r.text()
                return time.monotonic() - t0

            baseline = [await light_command(10 + i) for i in range(10)]
            rss_before = await asyncio.to_thread(peak_rss_mib, pid)

            async def bad_login(i: int) -> int:
                async with aiohttp.ClientSession() as other:
                    body = {"username": f"nobody{i}", "password": "wrong-password"}
                    r = await other.post(url + LOGIN, json=body)
                    return r.status

            flood = asyncio.gather(*(bad_login(i) for i in range(50)))
            during = [await light_command(30 + i) for i in range(10)]
            statuses = await flood
        assert set(statuses) <= {401, 429}, statuses
        grown = await asyncio.to_thread(peak_rss_mib, pid) - rss_before
        # Two hashing slots of 64 MiB each, plus allocator slack: not 50 x 64 MiB.
        assert grown < 2 * 64 + 96, f"peak RSS grew by {grown:.0f} MiB"
        base_ms, during_ms = statistics.median(baseline), statistics.median(during)
        # A correctness bound (commands were not starved), generous for a loaded machine.
        assert during_ms <= 2 * base_ms + 0.25, (baseline, during)
    finally:
        await daemon.stop()
        await zigbee.stop()
