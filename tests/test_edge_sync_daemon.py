"""The daemon syncs with the cloud: real `coresync-edge run` and `coresync-cloud`
processes, a `[cloud]` section in the site config, and `coresync-edge sync`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.config import parse_config
from edge.service import open_shop
from edge.shop import Shop
from sync.testing import CloudProcess
from tests.conftest import Broker, free_port
from tests.sync_helpers import Cloud, running_cloud

EXE = Path(sys.executable).parent / "coresync-edge"

SITE = """\
[site]
id = "edge-1"
name = "Sync test spa"

[mqtt]
host = "{host}"
port = {port}
zigbee2mqtt_base = "sync-test-{tag}"

[api]
port = 0
zeroconf = false

[cloud]
base_url = "{url}"
node_id = "edge-1"
secret_env = "TEST_NODE_SECRET"
interval_s = 0.2
backoff_min_s = 0.05
backoff_max_s = 0.5

[[rooms]]
id = "lobby"
name = "Lobby"
  [[rooms.devices]]
  id = "light"
  kind = "light"
  type = "zigbee2mqtt"
  friendly_name = "lobby_light"
"""


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[tuple[Cloud, CloudProcess]]:
    with running_cloud(tmp_path / "cloud.db") as running:
        yield running


def write_site(tmp: Path, broker: Broker, url: str) -> Path:
    path = tmp / "site.toml"
    path.write_text(SITE.format(host=broker.host, port=broker.port, url=url, tag=os.getpid()))
    parse_config(path.read_text())  # the test's own config must be valid
    return path


def wait_for(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def cloud_products(cloud: Cloud) -> set[str]:
    page = cloud.shop.list_products({"page_size": 100})
    return {p.slug for p in page.items}


def test_daemon_pulls_catalogue_and_pushes_counter_order(
    cloud: tuple[Cloud, CloudProcess], mqtt_broker: Broker, tmp_path: Path
) -> None:
    prepared, proc = cloud
    site = write_site(tmp_path, mqtt_broker, proc.url)
    data = tmp_path / "edge-data"
    env = {**os.environ, "TEST_NODE_SECRET": prepared.secrets["edge-1"]}
    daemon = subprocess.Popen(
        [str(EXE), "run", "--config", str(site), "--data-dir", str(data)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        cfg = parse_config(site.read_text())
        edge = open_shop(cfg, data)
        try:
            # The catalogue and members come down to the spa...
            def catalogue_arrived() -> bool:
                try:
                    return len(edge.list_products({"page_size": 100}).items) == len(
                        cloud_products(prepared)
                    )
                except Exception:
                    return False

            wait_for(catalogue_arrived, 30, "the catalogue to reach the edge")
            wait_for(lambda: edge.spare_numbers("PO") > 0, 30, "a number block lease")
            # ...a counter order taken at the spa goes up.
            member = prepared.members["ava"]
            wait_for(lambda: _has_member(edge, member), 30, "members to reach the edge")
            order = edge.create_order(member, {"items": [{"product": "gua-sha", "quantity": 2}]})
        finally:
            edge.db.close()

        def order_in_cloud() -> bool:
            return any(o.number == order.number for o in prepared.shop.list_orders().items)

        wait_for(order_in_cloud, 30, "the counter order to reach the cloud")
        # A second cycle from the CLI finds nothing left to push.
        daemon.terminate()
        daemon.wait(20)
        status = subprocess.run(
            [str(EXE), "sync", "--config", str(site), "--data-dir", str(data), "--status"],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["queue_depth"] == 0
        once = subprocess.run(
            [str(EXE), "sync", "--config", str(site), "--data-dir", str(data), "--once"],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert once.returncode == 0, once.stderr
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()


def _has_member(shop: Shop, member_id: str) -> bool:
    try:
        shop.get_member(member_id)
    except Exception:
        return False
    return True


def test_sync_once_reports_unreachable_cloud(tmp_path: Path, mqtt_broker: Broker) -> None:
    site = write_site(tmp_path, mqtt_broker, f"http://127.0.0.1:{free_port()}")
    out = subprocess.run(
        [str(EXE), "sync", "--config", str(site), "--data-dir", str(tmp_path / "d"), "--once"],
        env={**os.environ, "TEST_NODE_SECRET": "x"}, capture_output=True, text=True,
        check=False, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1
    assert "sync failed" in out.stderr


def test_sync_without_cloud_section_is_refused(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(
        SITE.split("[cloud]")[0].format(host="127.0.0.1", port=1883, url="", tag="x")
        + SITE.split("backoff_max_s = 0.5\n")[1]
    )
    out = subprocess.run(
        [str(EXE), "sync", "--config", str(site), "--once"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 2 and "no [cloud] section" in out.stderr
