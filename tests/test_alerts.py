"""Alerts that reach staff, on real parts: the heater guard on a simulated
Zigbee heater over Mosquitto raises the alert, a real local SMTP server
(aiosmtpd) receives the e-mail and a local aiohttp receiver the ntfy-style
webhook; de-duplication, repeats, the dashboard's acknowledge, and channel
outages (kept, retried, shown in /healthz).  Time for repeats and retries is
a clock the test moves."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from drivers.modbus.simulator import ThermostatGateway
from drivers.model import Availability
from drivers.mqtt.simulator import ZigbeeSimulator
from edge.alerts.dispatcher import AlertDispatcher
from edge.api import create_app
from edge.api.routes_auth import INITIAL_PASSWORD_FILE
from edge.config import parse_config
from edge.core import EdgeCore
from edge.demo.broker import free_port
from edge.demo.runner import zigbee_devices
from edge.health import site_health
from edge.service import EdgeService
from edge.supervisor import supervisor_for
from tests.axe import serious_violations
from tests.conftest import Broker
from tests.edge_site import wait_until
from tests.manual_clock import TestClock
from tests.test_api_support import fast_settings
from tests.test_edge_service import SITE, STAFF
from tests.test_web_pages import browser, shot

__all__ = ["browser"]

SMTP_PASSWORD = "smtp-Secret-4711"
WEBHOOK_TOKEN = "tk_webhook-Secret-0815"
START = datetime(2026, 3, 7, 15, 0, tzinfo=UTC)

ALERTS = """
[alerts]
dedup_window_s = 600
repeat_s = 900
  [[alerts.channels]]
  id = "office-mail"
  type = "email"
  host = "127.0.0.1"
  port = {smtp_port}
  security = "none"
  username = "alerts"
  secret_credential = "smtp-password"
  sender = "spa@example.org"
  recipients = ["manager@example.org"]
  [[alerts.channels]]
  id = "phones"
  type = "webhook"
  url = "http://127.0.0.1:{hook_port}/"
  topic = "spa-alerts"
  secret_credential = "ntfy-token"
"""


class Mailbox:
    """aiosmtpd handler: keeps every message (it runs on the server's thread)."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


class SmtpServer:
    """A real SMTP server on a fixed port that can go down and come back."""

    def __init__(self, mailbox: Mailbox, port: int) -> None:
        self.mailbox, self.port = mailbox, port
        self._controller: Controller | None = None

    async def start(self) -> None:
        self._controller = Controller(
            self.mailbox,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=authenticator,
            auth_require_tls=False,
        )
        await asyncio.to_thread(self._controller.start)

    async def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            await asyncio.to_thread(controller.stop)


def authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"alerts",
        SMTP_PASSWORD.encode(),
    )
    return AuthResult(success=ok)


@dataclass
class Hook:
    """The webhook receiver: answers ``status`` and keeps what it got."""

    status: int = 200
    posts: list[tuple[str | None, dict[str, Any]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.status == 200:
            self.posts.append((request.headers.get("Authorization"), body))
        return web.json_response({}, status=self.status)


@dataclass
class AlertSite:
    service: EdgeService
    core: EdgeCore
    dispatcher: AlertDispatcher
    clock: TestClock
    zigbee: ZigbeeSimulator
    mailbox: Mailbox
    hook: Hook
    smtp: SmtpServer

    async def move_to(self, when: datetime) -> None:
        """Move the clock and wait until the dispatcher has looked at that time
        (a non-forwarded alert kind wakes it without being sent)."""
        self.clock.set(when)
        self.core.events.publish("alert", {"kind": "test_tick", "message": "tick"})
        await wait_until(lambda: self.dispatcher.checked_through == when)


@pytest.fixture
async def site(
    mqtt_broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[AlertSite]:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "smtp-password").write_text(SMTP_PASSWORD + "\n")
    (creds / "ntfy-token").write_text(WEBHOOK_TOKEN + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    mailbox, hook = Mailbox(), Hook()
    smtp_port = free_port()
    smtp = SmtpServer(mailbox, smtp_port)
    await smtp.start()
    receiver = web.Application()
    receiver.router.add_post("/", hook.handle)
    hook_server = TestServer(receiver, host="127.0.0.1")
    await hook_server.start_server()
    gateway = ThermostatGateway(host="127.0.0.1", port=free_port(), units=[1])
    await gateway.start()
    tag = uuid.uuid4().hex[:8]
    text = SITE.format(
        site=f"alerts-{tag}",
        host=mqtt_broker.host,
        port=mqtt_broker.port,
        base=f"alerts-z2m-{tag}",
        modbus_port=gateway.port,
        auto_off=60,
        unknown_grace=600,  # no safety off during the test: one alert kind at a time
    ) + ALERTS.format(smtp_port=smtp_port, hook_port=hook_server.port)
    cfg = parse_config(text)
    zigbee = ZigbeeSimulator(
        mqtt_broker.host, mqtt_broker.port, base=f"alerts-z2m-{tag}", devices=zigbee_devices(cfg)
    )
    await zigbee.start()
    clock = TestClock(START)
    service = EdgeService(cfg, data_dir=tmp_path / "data", with_api=False, clock=clock)
    try:
        core = await service.start()
        devices = [d for _, d in core.all_devices()]
        await wait_until(
            lambda: all(d.snapshot().availability is Availability.ONLINE for d in devices)
        )
        assert service.alerts is not None
        yield AlertSite(service, core, service.alerts, clock, zigbee, mailbox, hook, smtp)
    finally:
        await service.stop()
        await zigbee.stop()
        await gateway.stop()
        await hook_server.close()
        await smtp.stop()


async def heater_goes_offline_while_heating(site: AlertSite) -> None:
    outcome = await site.core.command("sauna", "heater", {"mode": "heat", "target_c": 80}, STAFF)
    assert outcome.ok, outcome
    await site.zigbee.go_offline("sauna_heater")


async def test_heater_offline_while_heating_reaches_mail_and_webhook_once_until_acked(
    site: AlertSite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await heater_goes_offline_while_heating(site)
    await wait_until(lambda: len(site.mailbox.messages) == 1 and len(site.hook.posts) == 1)
    mail = site.mailbox.messages[0]
    assert mail["Subject"] == "[Test spa] heater offline (sauna/heater)"
    assert mail["To"] == "manager@example.org"
    assert "went offline while heating" in mail.get_payload()
    auth, body = site.hook.posts[0]
    assert auth == f"Bearer {WEBHOOK_TOKEN}"
    assert body["topic"] == "spa-alerts" and body["priority"] == 5
    assert body["coresync"]["kind"] == "heater_offline"
    assert body["coresync"]["subject"] == "sauna/heater"

    # The same alert again within the window: counted, not sent.
    heater = site.core.room("sauna").devices["heater"]
    await site.zigbee.go_online("sauna_heater")
    await wait_until(lambda: heater.snapshot().availability is Availability.ONLINE)
    await site.zigbee.go_offline("sauna_heater")
    await wait_until(lambda: site.dispatcher.suppressed == 1)
    (alert,) = [a for a in site.dispatcher.alerts if a.kind == "heater_offline"]
    assert alert.count == 2
    assert (len(site.mailbox.messages), len(site.hook.posts)) == (1, 1)

    # Unacknowledged: sent again after repeat_s.
    await site.move_to(START + timedelta(seconds=900))
    await wait_until(lambda: len(site.mailbox.messages) == 2 and len(site.hook.posts) == 2)
    assert site.mailbox.messages[1]["Subject"].startswith("[Test spa] still unacknowledged:")

    # Acknowledged on the dashboard's API: no more repeats.
    app = create_app(site.core, data_dir=tmp_path / "data", settings=fast_settings())
    async with TestClient(TestServer(app)) as client:
        password = (tmp_path / "data" / INITIAL_PASSWORD_FILE).read_text().strip()
        resp = await client.post(
            "/api/v1/auth/login", json={"username": "admin", "password": password}
        )
        headers = {"Authorization": f"Bearer {(await resp.json())['token']}"}
        client.session.cookie_jar.clear()
        listed = await (await client.get("/api/v1/alerts", headers=headers)).json()
        assert [a["kind"] for a in listed["alerts"]] == ["heater_offline"]
        assert {c["id"]: c["delivered"] for c in listed["channels"]} == {
            "office-mail": 2,
            "phones": 2,
        }
        resp = await client.post(f"/api/v1/alerts/{alert.id}/ack", headers=headers)
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["acked_by"] == "admin"
        resp = await client.post("/api/v1/alerts/999/ack", headers=headers)
        assert resp.status == 404
    await site.move_to(START + timedelta(seconds=3 * 900))
    assert (len(site.mailbox.messages), len(site.hook.posts)) == (2, 2)
    # No secret in any log line.
    assert SMTP_PASSWORD not in caplog.text and WEBHOOK_TOKEN not in caplog.text


async def test_info_news_is_not_sent(site: AlertSite) -> None:
    site.core.events.publish(
        "alert", {"severity": "info", "kind": "disk_full", "message": "disk space back"}
    )
    site.core.events.publish(
        "alert", {"severity": "critical", "kind": "door_relock_failed", "message": "relock"}
    )
    await wait_until(lambda: len(site.hook.posts) == 1)
    assert [a.kind for a in site.dispatcher.alerts] == ["door_relock_failed"]


async def test_smtp_and_webhook_down_keep_the_alert_retry_and_show_in_health(
    site: AlertSite,
) -> None:
    await site.smtp.stop()  # nothing listens on the SMTP port now
    site.hook.status = 503
    site.core.events.publish(
        "alert", {"severity": "critical", "kind": "disk_full", "message": "disk full"}
    )
    channels = site.dispatcher.channels
    await wait_until(lambda: not channels["office-mail"].is_healthy())
    await wait_until(lambda: not channels["phones"].is_healthy())
    assert len(channels["office-mail"].queue) == 1 and len(channels["phones"].queue) == 1
    assert "HTTP 503" in (channels["phones"].last_error or "")
    ok, health = await site_health(site.core, supervisor_for(site.core), site.service.data_dir)
    assert not ok
    assert "alerts:office-mail: disconnected" in health["problems"]
    assert "alerts:phones: disconnected" in health["problems"]

    # Both come back; at the retry time the kept alert goes out.
    await site.smtp.start()
    site.hook.status = 200
    retry = max(c.retry_at for c in channels.values() if c.retry_at is not None)
    await site.move_to(retry)
    await wait_until(lambda: len(site.mailbox.messages) == 1 and len(site.hook.posts) == 1)
    assert site.mailbox.messages[0]["Subject"] == "[Test spa] disk full"
    await wait_until(lambda: all(c.is_healthy() for c in channels.values()))
    ok, health = await site_health(site.core, supervisor_for(site.core), site.service.data_dir)
    assert not [p for p in health["problems"] if p.startswith("alerts:")]


async def test_quiet_hours_hold_non_urgent_alerts_until_they_end(site: AlertSite) -> None:
    dispatcher = site.dispatcher
    mail = dispatcher.channels["office-mail"]
    mail.config = mail.config.model_copy(update={"quiet_hours": "14:00-15:40"})  # UTC site
    site.core.events.publish(
        "alert", {"severity": "critical", "kind": "disk_full", "message": "disk full"}
    )
    await wait_until(lambda: len(site.hook.posts) == 1)  # the webhook has no quiet hours
    assert len(mail.queue) == 1 and site.mailbox.messages == []
    await site.move_to(START + timedelta(minutes=9))
    assert site.mailbox.messages == []
    assert len(mail.queue) == 1
    # Repeats fall due meanwhile (every 15 min) but do not pile up behind it.
    await site.move_to(START + timedelta(minutes=31))
    assert len(mail.queue) == 1 and site.mailbox.messages == []
    assert len(site.hook.posts) == 2  # the webhook: the alert and one repeat (no catch-up burst)
    await site.move_to(START + timedelta(minutes=40))  # 15:40: quiet hours over
    await wait_until(lambda: len(site.mailbox.messages) == 1)
    assert site.mailbox.messages[0]["Subject"] == "[Test spa] disk full"


async def test_dashboard_shows_the_alert_and_acknowledges_it(
    site: AlertSite, browser: Any, tmp_path: Path
) -> None:
    await heater_goes_offline_while_heating(site)
    await wait_until(lambda: len(site.hook.posts) == 1)
    app = create_app(site.core, data_dir=tmp_path / "data", settings=fast_settings())
    async with TestClient(TestServer(app)) as client:
        page = await browser.new_page(viewport={"width": 390, "height": 844}, bypass_csp=True)
        await page.goto(str(client.make_url("/dashboard#alerts")))
        await page.fill("#username", "admin")
        await page.fill("#password", (tmp_path / "data" / INITIAL_PASSWORD_FILE).read_text())
        await page.click("#login button[type=submit]")
        row = page.locator("tr[data-alert]")
        await row.wait_for()
        assert "heater offline" in await row.inner_text()
        assert "✓ delivering" in await page.inner_text("#page")
        assert await serious_violations(page) == []
        await shot(page, "dashboard-alerts")
        await row.locator('button[data-action="ack"]').click()
        await row.locator('[data-role="acked"]').wait_for()
        assert "acknowledged by admin" in await row.inner_text()
        (alert,) = site.dispatcher.alerts
        assert alert.acked_by == "admin"
        await page.close()


async def test_a_component_restarting_is_alerted(site: AlertSite) -> None:
    crashed = asyncio.Event()

    async def crashes_once() -> None:
        if not crashed.is_set():
            crashed.set()
            raise RuntimeError("injected crash")
        await asyncio.Event().wait()

    site.service.supervisor.add("crashes-once", crashes_once)
    await wait_until(lambda: len(site.hook.posts) == 1)
    _, body = site.hook.posts[0]
    assert body["coresync"]["kind"] == "component_restarting"
    assert body["coresync"]["subject"] == "crashes-once"
    assert "injected crash" in body["message"]


async def test_a_door_open_while_locked_is_alerted_as_forced(site: AlertSite) -> None:
    await site.zigbee.update("door", contact=False)  # locked, yet the door opens
    await wait_until(lambda: len(site.hook.posts) == 1)
    _, body = site.hook.posts[0]
    assert body["coresync"]["kind"] == "door_forced"
    assert body["coresync"]["subject"] == "sauna/door"
    assert body["priority"] == 5


async def test_an_unexpected_send_error_is_kept_and_retried_not_a_crash(site: AlertSite) -> None:
    async def surprise(cfg: Any, site_name: str, alert: dict[str, Any]) -> None:
        raise ValueError("a library's surprise")  # injected fault

    real = site.dispatcher.sender
    site.dispatcher.sender = surprise
    site.core.events.publish(
        "alert", {"severity": "critical", "kind": "disk_full", "message": "disk full"}
    )
    channels = site.dispatcher.channels
    await wait_until(lambda: not channels["phones"].is_healthy())
    assert "ValueError" in (channels["phones"].last_error or "")
    component = site.service.supervisor.components["alerts"]
    assert component.up and component.restarts == 0
    site.dispatcher.sender = real
    retry = max(c.retry_at for c in channels.values() if c.retry_at is not None)
    await site.move_to(retry)
    await wait_until(lambda: len(site.hook.posts) == 1 and len(site.mailbox.messages) == 1)


async def test_a_tailgate_door_event_is_alerted(site: AlertSite) -> None:
    # What the door publishes when more people cross than it let in
    # (edge/door/service.py; tests/test_door_tailgate.py sees it come from a clip).
    site.core.events.publish(
        "alert",
        {"kind": "tailgate", "door": "entrance/door",
         "message": "tailgating at the door: 2 people at the door on one unlock for 1"},
    )  # fmt: skip
    await wait_until(lambda: len(site.hook.posts) == 1)
    _, body = site.hook.posts[0]
    assert body["coresync"]["kind"] == "tailgate"
    assert body["coresync"]["subject"] == "entrance/door"
    assert "2 people at the door on one unlock for 1" in body["message"]
