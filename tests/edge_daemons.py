"""Edges as real ``coresync-edge run`` daemons that sync with a cloud, for the
chaos and recovery tests: a site config with a ``[cloud]`` section, a staff
account made the way a manager makes one (admin login, ``POST /api/v1/users``,
then the new account logs in), and counter orders taken through the LAN API.

An order counts as taken only when the daemon answered 201; the test keeps
the id and number the daemon acknowledged and later finds them in the cloud.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from edge.config import SiteConfig, parse_config
from tests.conftest import Broker, free_port
from tests.daemon_process import Daemon, start_daemon, wait_for

SITE = """\
[site]
id = "{site}"
name = "Spa {site}"
timezone = "{timezone}"
tax_rate = 0.08

[mqtt]
host = "{host}"
port = {port}
zigbee2mqtt_base = "edge-{node}-{tag}"
client_id = "coresync-{node}-{tag}"  # two controllers of one site share the test broker
reconnect_min_s = 0.1
reconnect_max_s = 0.5

[api]
host = "127.0.0.1"
port = {api_port}
zeroconf = false

[cloud]
base_url = "{url}"
node_id = "{node}"
secret_env = "TEST_NODE_SECRET"
interval_s = 0.2
batch_size = {batch_size}
backoff_min_s = 0.05
backoff_max_s = 0.4
request_timeout_s = 5
numbers_low_water = 20

[[rooms]]
id = "lobby"
name = "Lobby"
  [[rooms.devices]]
  id = "light"
  kind = "light"
  type = "zigbee2mqtt"
  friendly_name = "lobby_light"
"""

STAFF = "desk"


@dataclass
class Edge:
    """One spa's controller: its config and data dir survive kills and restarts."""

    node: str
    site: str
    secret: str
    config: Path
    cfg: SiteConfig
    data: Path
    daemon: Daemon | None = None
    token: str | None = None
    taken: list[dict[str, Any]] = field(default_factory=list)  # acknowledged (201) orders
    started_at: datetime | None = None
    logs: list[str] = field(default_factory=list)  # the output of every daemon run so far

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.cfg.api.port}"

    async def start(self) -> None:
        """Start the daemon and wait until its LAN API listens."""
        self.started_at = datetime.now(UTC)
        self.daemon = await start_daemon(
            self.config, self.cfg, self.data, {"TEST_NODE_SECRET": self.secret}
        )

    async def kill(self) -> None:
        """SIGKILL the whole daemon (no shutdown code runs)."""
        assert self.daemon is not None
        await self.daemon.kill()
        self.logs.append(self.daemon.output)
        self.daemon = None

    async def stop(self) -> None:
        """SIGTERM, and the daemon must exit cleanly."""
        if self.daemon is None:
            return
        daemon, self.daemon = self.daemon, None
        code, _ = await daemon.terminate()
        self.logs.append(daemon.output)
        assert code == 0, daemon.output[-3000:]

    async def call(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, Any]:
        bearer = token or self.token
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        timeout = aiohttp.ClientTimeout(total=30)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.request(method, self.url + path, json=body, headers=headers) as resp,
        ):
            return resp.status, await resp.json()

    async def sign_in_staff(self) -> None:
        """Admin (first-start password) creates a staff account; the clerk logs in."""
        admin_pw = await asyncio.to_thread(
            lambda: (self.data / "initial-admin-password").read_text().strip()
        )
        status, body = await self.call(
            "POST", "/api/v1/auth/login", {"username": "admin", "password": admin_pw}
        )
        assert status == 200, body
        password = secrets.token_urlsafe(15)
        status, body = await self.call(
            "POST", "/api/v1/users", {"username": STAFF, "password": password, "role": "staff"},
            token=body["token"],
        )  # fmt: skip
        assert status == 201, body
        status, body = await self.call(
            "POST", "/api/v1/auth/login", {"username": STAFF, "password": password}
        )
        assert status == 200 and body["role"] == "staff", body
        self.token = body["token"]

    async def sync_status(self) -> dict[str, Any]:
        status, body = await self.call("GET", "/api/v1/sync/status")
        assert status == 200, body
        return dict(body)

    async def ready(self, within_s: float = 60) -> None:
        """A sync cycle of this daemon run succeeded: catalogue and members pulled,
        recovery done, numbers leased (a restored disk has none until then)."""
        since = self.started_at
        assert since is not None

        async def synced() -> bool:
            s = await self.sync_status()
            last = s["last_success"]
            fresh = last is not None and datetime.fromisoformat(last) > since
            return fresh and s["spare_numbers"]["PO"] > 0

        await wait_for(synced, within_s, f"{self.node} to sync once", lambda: self.node)

    async def order(self, member: str, quantity: int = 2) -> dict[str, Any]:
        """A counter order at the front desk; it must be acknowledged (201)."""
        body = {"member_id": member, "items": [{"product": "gua-sha", "quantity": quantity}]}
        status, answer = await self.call("POST", "/api/v1/shop/orders", body)
        assert status == 201, (self.node, status, answer)
        taken = {"id": answer["id"], "number": answer["number"], "quantity": quantity}
        self.taken.append(taken)
        return taken

    async def orders(self) -> dict[str, str]:
        """Every order this edge holds (its own and those it pulled): id -> number."""
        found: dict[str, str] = {}
        page = 1
        while True:
            status, body = await self.call("GET", f"/api/v1/shop/orders?page={page}&page_size=100")
            assert status == 200, body
            found.update({o["id"]: o["number"] for o in body["items"]})
            if page * 100 >= body["total"]:
                return found
            page += 1


def make_edge(
    tmp: Path, broker: Broker, *, node: str, site: str, secret: str, url: str,
    timezone: str = "UTC", batch_size: int = 50,
) -> Edge:  # fmt: skip
    text = SITE.format(
        site=site, node=node, timezone=timezone, host=broker.host, port=broker.port,
        tag=free_port(), api_port=free_port(), url=url, batch_size=batch_size,
    )  # fmt: skip
    config = tmp / f"{node}.toml"
    config.write_text(text)
    return Edge(node, site, secret, config, parse_config(text), tmp / f"{node}-data")
