"""The guest tablet in headless Chromium against the real API and a real
site (a simulated Zigbee sauna heater heating up over Mosquitto, the heater
guard, SQLite history): layouts without horizontal overflow and with touch
targets of 48 px at tablet and phone sizes, "ready in" and session time left
from the measured heat-up, an offline heater pausing its controls with a
sentence, and a language switch that changes every string."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from drivers.model import Availability
from drivers.mqtt.simulator import ZigbeeSimulator
from edge.api import create_app
from edge.api.routes_auth import INITIAL_PASSWORD_FILE
from edge.config import parse_config
from edge.core import Actor, EdgeCore
from edge.demo.runner import zigbee_devices
from edge.service import EdgeService
from tests.axe import serious_violations
from tests.conftest import Broker
from tests.edge_site import wait_until
from tests.test_api_support import fast_settings
from tests.test_web_pages import browser, shot

__all__ = ["browser"]

WEB = Path(__file__).resolve().parent.parent / "web"
SIZES = [(800, 1280), (1280, 800), (390, 844)]
STAFF = Actor("staff", "test")

SITE = """\
[site]
id = "{site}"
name = "Casa Serena Spa"
timezone = "Europe/Madrid"
locale = "es-ES"

[mqtt]
host = "{host}"
port = {port}
zigbee2mqtt_base = "{base}"
reconnect_min_s = 0.1
reconnect_max_s = 1.0

[[rooms]]
id = "sauna"
name = "Finnish sauna"
  [[rooms.devices]]
  id = "heater"
  kind = "climate"
  name = "Sauna heater"
  type = "zigbee2mqtt"
  friendly_name = "sauna_heater"
  heater = true
  limits = {{ min_target_c = 60, max_target_c = 90, hard_max_c = 95, auto_off_minutes = 60 }}
  [[rooms.devices]]
  id = "glow"
  kind = "light"
  name = "Glow"
  type = "zigbee2mqtt"
  friendly_name = "sauna_glow"
  [[rooms.scenes]]
  id = "unwind"
  name = "Unwind"
  devices.glow = {{ on = true, brightness = 30 }}
  [[rooms.scenes]]
  id = "clean"
  name = "Cleaning light"
  devices.glow = {{ on = true, brightness = 100 }}
"""


@dataclass
class TabletSite:
    core: EdgeCore
    zigbee: ZigbeeSimulator
    client: TestClient[Any, Any]
    token: str

    @property
    def url(self) -> str:
        return str(self.client.make_url("/tablet"))


@pytest.fixture
async def site(mqtt_broker: Broker, tmp_path: Path) -> AsyncIterator[TabletSite]:
    tag = uuid.uuid4().hex[:8]
    cfg = parse_config(
        SITE.format(site=f"tab-{tag}", host=mqtt_broker.host, port=mqtt_broker.port, base=tag)
    )
    # A quick heat-up (0.5 degC/s, a tick every 0.2 s) so the rate is measured in seconds.
    zigbee = ZigbeeSimulator(
        mqtt_broker.host, mqtt_broker.port, base=tag, devices=zigbee_devices(cfg), tick_s=0.2
    )
    await zigbee.start()
    service = EdgeService(cfg, data_dir=tmp_path, with_api=False)
    core = await service.start()
    client: TestClient[Any, Any] = TestClient(
        TestServer(create_app(core, data_dir=tmp_path, settings=fast_settings()))
    )
    try:
        devices = [d for _, d in core.all_devices()]
        online = Availability.ONLINE
        await wait_until(lambda: all(d.snapshot().availability is online for d in devices))
        await client.start_server()
        password = (tmp_path / INITIAL_PASSWORD_FILE).read_text().strip()
        resp = await client.post(
            "/api/v1/auth/login", json={"username": "admin", "password": password}
        )
        admin = {"Authorization": f"Bearer {(await resp.json())['token']}"}
        client.session.cookie_jar.clear()
        code = (
            await (await client.post("/api/v1/rooms/sauna/pairing-codes", headers=admin)).json()
        )["code"]
        paired = await (await client.post("/api/v1/tablets/pair", json={"code": code})).json()
        yield TabletSite(core, zigbee, client, paired["token"])
    finally:
        await client.close()
        await service.stop()
        await zigbee.stop()


async def open_tablet(
    site: TabletSite, browser: Any, width: int, height: int, theme: str = "bright"
) -> Any:
    """The tablet in a known look: by default the look follows the hour of the
    day, which would make what a test sees depend on when it runs."""
    page = await browser.new_page(viewport={"width": width, "height": height}, bypass_csp=True)
    await page.goto(site.url)
    await page.evaluate(
        "([t, theme]) => { localStorage.setItem('coresync.tablet.token', t);"
        " localStorage.setItem('coresync.tablet.room', 'sauna');"
        " localStorage.setItem('coresync.tablet.lang', 'en');"
        " localStorage.setItem('coresync.tablet.theme', theme); }",
        [site.token, theme],
    )
    await page.reload()
    await page.wait_for_function("document.getElementById('status').dataset.state === 'live'")
    return page


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_layout_fits_without_overflow_and_targets_are_48px(
    site: TabletSite, browser: Any, width: int, height: int
) -> None:
    page = await open_tablet(site, browser, width, height)
    assert await page.text_content("#site-name") == "Casa Serena Spa"
    # English words, the site's (Spanish) conventions: a 24-hour clock.
    assert re.fullmatch(r"\d{2}:\d{2}", await page.inner_text("#clock-time"))
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{overflow}px of horizontal overflow at {width}x{height}"
    small = await page.evaluate(
        """() => [...document.querySelectorAll('#room button, #room input')]
            .filter((e) => e.offsetParent !== null)
            .map((e) => [e.textContent || e.getAttribute('aria-label') || e.type,
                         e.getBoundingClientRect()])
            .filter(([, r]) => r.height < 48 || (r.width < 48))
            .map(([name, r]) => `${name}: ${r.width}x${r.height}`)"""
    )
    assert small == [], small
    assert await serious_violations(page) == []
    await shot(page, f"tablet-{width}x{height}")
    await page.click("#theme")  # the dim look must pass too
    await page.wait_for_function("document.body.classList.contains('dim')")
    assert await serious_violations(page) == []
    await page.close()


async def test_sauna_ready_in_and_time_left_then_offline_pauses_controls(
    site: TabletSite, browser: Any
) -> None:
    page = await open_tablet(site, browser, 800, 1280)
    sauna = page.locator('[data-heater="true"]')
    assert await sauna.locator('[data-role="ready"]').inner_text() == "The heater is off."
    await sauna.locator('[data-role="power"]').click()
    await page.wait_for_function(
        "/^Ready in \\d+ min$/.test(document.querySelector('[data-heater] [data-role=ready]')"
        ".textContent)"
    )
    left = await sauna.locator('[data-role="left"]').inner_text()
    assert re.fullmatch(r"(59 min|1 hr) left in this session", left), left
    temps = await sauna.locator('[data-role="temps"]').inner_text()
    # The target within limits, with the site's decimal comma.
    assert re.fullmatch(r"\d+(,\d)? °C → 60 °C", temps), temps
    await shot(page, "tablet-sauna-heating")

    await site.zigbee.go_offline("sauna_heater")
    notice = sauna.locator('[data-role="offline-notice"]')
    await notice.wait_for(state="visible")
    assert "Sauna heater is not responding right now" in await notice.inner_text()
    for role in ("power", "cooler", "warmer"):
        assert await sauna.locator(f'[data-role="{role}"]').is_disabled(), role
    assert await page.locator('[data-device="glow"] button').is_enabled()  # only the heater
    assert await serious_violations(page) == []
    await shot(page, "tablet-sauna-offline")
    await page.click("#theme")  # the sentence stays legible in the dim look
    await page.wait_for_function("document.body.classList.contains('dim')")
    assert await serious_violations(page) == []
    await site.zigbee.go_online("sauna_heater")
    await notice.wait_for(state="hidden")
    assert await sauna.locator('[data-role="power"]').is_enabled()
    await page.close()


async def test_language_switch_changes_every_string(site: TabletSite, browser: Any) -> None:
    en = json.loads((WEB / "i18n" / "en.json").read_text())
    es = json.loads((WEB / "i18n" / "es.json").read_text())
    page = await open_tablet(site, browser, 1280, 800)
    english = await page.inner_text("body")
    assert "Start heating" in english and "Turn on" in english
    await page.click('button[data-lang="es"]')
    await page.wait_for_function("document.documentElement.lang === 'es'")
    spanish = await page.inner_text("body")
    labels = await page.evaluate(
        "[...document.querySelectorAll('[aria-label]')].map((e) => e.getAttribute('aria-label'))"
    )
    shown = spanish + "\n" + "\n".join(labels)
    left_over = []
    for key, text in en.items():
        if key.startswith("_") or text == es[key]:
            continue
        for fragment in re.split(r"\{\w+\}", text):
            if len(fragment.strip()) >= 4 and fragment.strip() in shown:
                left_over.append((key, fragment.strip()))
    assert left_over == [], left_over
    assert "Empezar a calentar" in spanish and "Encender" in spanish
    assert await page.title() == es["page_title"]
    await shot(page, "tablet-es")
    # The choice is the tablet's: it stays after a reload.
    await page.reload()
    await page.wait_for_function("document.documentElement.lang === 'es'")
    await page.close()


async def test_the_look_follows_the_rooms_scene(site: TabletSite, browser: Any) -> None:
    page = await open_tablet(site, browser, 800, 1280)
    dim = "document.body.classList.contains('dim')"
    await page.click('button[data-scene="clean"]')
    await page.wait_for_function(f"!{dim}")
    await page.click('button[data-scene="unwind"]')
    await page.wait_for_function(dim)
    # A scene run elsewhere (staff, a schedule) changes the look too.
    await site.core.activate_scene("sauna", "clean", STAFF)
    await page.wait_for_function(f"!{dim}")
    await page.click("#theme")  # the guest's choice holds until the next scene
    await page.wait_for_function(dim)
    await page.close()
