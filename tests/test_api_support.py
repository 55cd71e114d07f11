"""Shared fixtures of the LAN API tests: a real site (Mosquitto, simulated
Zigbee2MQTT devices, a real SQLite file) under EdgeService, and the API on
aiohttp's test server with staff users of each role."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from drivers.mqtt.simulator import ZigbeeSimulator
from edge.api import ApiSettings, create_app
from edge.api.routes_auth import INITIAL_PASSWORD_FILE
from edge.config import parse_config
from edge.core import EdgeCore
from edge.service import EdgeService
from tests.conftest import Broker
from tests.edge_site import start_edge
from tests.edge_site import wait_until as wait_until  # other test modules import it here

SITE = """\
[site]
id = "{site}"
name = "API test spa"

[mqtt]
host = "{host}"
port = {port}
zigbee2mqtt_base = "{base}"
reconnect_min_s = 0.1
reconnect_max_s = 1.0

[[rooms]]
id = "room-a"
name = "Treatment A"
  [[rooms.devices]]
  id = "ceiling"
  kind = "light"
  name = "Ceiling"
  type = "zigbee2mqtt"
  friendly_name = "a_ceiling"
  limits = {{ min_brightness = 5, max_brightness = 80 }}
  [[rooms.devices]]
  id = "accent"
  kind = "light"
  type = "zigbee2mqtt"
  friendly_name = "a_accent"
  [[rooms.devices]]
  id = "climate"
  kind = "climate"
  type = "zigbee2mqtt"
  friendly_name = "a_climate"
  limits = {{ min_target_c = 18, max_target_c = 26 }}
  [[rooms.scenes]]
  id = "relax"
  name = "Relax"
  devices.ceiling = {{ on = true, brightness = 30 }}
  devices.accent = {{ on = true, brightness = 50 }}
  devices.climate = {{ mode = "heat", target_c = 23.5 }}
  [[rooms.scenes]]
  id = "bright"
  name = "Bright"
  devices.ceiling = {{ on = true, brightness = 80 }}

[[rooms]]
id = "room-b"
name = "Treatment B"
  [[rooms.devices]]
  id = "main"
  kind = "light"
  type = "zigbee2mqtt"
  friendly_name = "b_main"
  [[rooms.scenes]]
  id = "day"
  name = "Day"
  devices.main = {{ on = true, brightness = 70 }}

[[rooms]]
id = "entrance"
name = "Entrance"
  [[rooms.devices]]
  id = "door"
  kind = "lock"
  type = "zigbee2mqtt"
  friendly_name = "e_door"
  [[rooms.devices]]
  id = "light"
  kind = "light"
  type = "zigbee2mqtt"
  friendly_name = "e_light"
  [[rooms.scenes]]
  id = "open"
  name = "Open"
  devices.door = {{ locked = false }}
  devices.light = {{ on = true }}
  [[rooms.scenes]]
  id = "lights"
  name = "Lights"
  devices.light = {{ on = true, brightness = 60 }}
"""

PASSWORDS = {"staff1": "staff-password-1", "manager1": "manager-password-1"}


def fast_settings(**overrides: Any) -> ApiSettings:
    """Cheap argon2 and quick lockouts, so tests run fast (production keeps defaults)."""
    base: dict[str, Any] = {
        "port": 0,
        "argon2_time_cost": 1,
        "argon2_memory_kib": 64,
        "login_lockout_base_s": 30.0,
        "zeroconf": False,
    }
    base.update(overrides)
    return ApiSettings(**base)


@dataclass
class ApiSite:
    service: EdgeService
    core: EdgeCore
    zigbee: ZigbeeSimulator
    client: TestClient[Any, Any]
    data_dir: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def login(self, username: str, password: str) -> str:
        resp = await self.client.post(
            "/api/v1/auth/login", json={"username": username, "password": password}
        )
        assert resp.status == 200, await resp.text()
        # Tests authenticate with bearer headers; cookie sessions are tested on their own.
        self.client.session.cookie_jar.clear()
        return str((await resp.json())["token"])

    async def pair(self, room_id: str, name: str = "tablet") -> dict[str, Any]:
        resp = await self.client.post(
            f"/api/v1/rooms/{room_id}/pairing-codes", headers=self.auth("admin")
        )
        assert resp.status == 201, await resp.text()
        code = (await resp.json())["code"]
        resp = await self.client.post("/api/v1/tablets/pair", json={"code": code, "name": name})
        assert resp.status == 201, await resp.text()
        paired: dict[str, Any] = await resp.json()
        return paired


async def start_api_site(
    broker: Broker, tmp: Path, *, site_lines: str = "", **settings: Any
) -> ApiSite:
    """``site_lines``: more keys of the ``[site]`` table (e.g. a logo)."""
    tag = uuid.uuid4().hex[:8]
    text = SITE.format(site=f"api-{tag}", host=broker.host, port=broker.port, base=f"api-z2m-{tag}")
    cfg = parse_config(
        text.replace('name = "API test spa"\n', f'name = "API test spa"\n{site_lines}')
    )
    zigbee, service, core = await start_edge(cfg, broker, tmp)
    app = create_app(core, data_dir=tmp, settings=fast_settings(**settings))
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    site = ApiSite(service, core, zigbee, client, tmp)
    admin_password = (tmp / INITIAL_PASSWORD_FILE).read_text().strip()
    site.tokens["admin"] = await site.login("admin", admin_password)
    for username, role in (("staff1", "staff"), ("manager1", "manager")):
        resp = await client.post(
            "/api/v1/users",
            json={"username": username, "password": PASSWORDS[username], "role": role},
            headers=site.auth("admin"),
        )
        assert resp.status == 201, await resp.text()
        site.tokens[username] = await site.login(username, PASSWORDS[username])
    return site


async def stop_api_site(site: ApiSite) -> None:
    await site.client.close()
    await site.service.stop()
    await site.zigbee.stop()


@pytest.fixture
async def api(mqtt_broker: Broker, tmp_path: Path) -> AsyncIterator[ApiSite]:
    site = await start_api_site(mqtt_broker, tmp_path)
    try:
        yield site
    finally:
        await stop_api_site(site)
