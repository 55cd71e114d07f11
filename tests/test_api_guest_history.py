"""The guest tablet's extras and the room history over the real API: who may
read them, and bad input named."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edge.config import parse_config
from edge.errors import ConfigError
from tests.conftest import Broker
from tests.test_api_support import ApiSite, api, start_api_site, stop_api_site

__all__ = ["api"]
LOGO = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><circle r="4"/></svg>'


async def test_the_sites_logo_reaches_the_tablet_without_a_token(
    mqtt_broker: Broker, tmp_path: Path
) -> None:
    logo = tmp_path / "logo.svg"
    await asyncio.to_thread(logo.write_bytes, LOGO)
    site = await start_api_site(mqtt_broker, tmp_path, site_lines=f'logo = "{logo}"\n')
    try:
        paired = await site.pair("room-a")
        tablet = {"Authorization": f"Bearer {paired['token']}"}
        body = await (await site.client.get("/api/v1/rooms/room-a/guest", headers=tablet)).json()
        assert body["site"]["logo"] == "/site/logo"
        # An <img> sends no token: the logo is public, and only the logo.
        resp = await site.client.get("/site/logo")
        assert resp.status == 200 and await resp.read() == LOGO
        assert resp.headers["Content-Type"] == "image/svg+xml"
        await asyncio.to_thread(logo.unlink)
        assert (await site.client.get("/site/logo")).status == 404
    finally:
        await stop_api_site(site)


async def test_no_logo_configured_is_a_404(api: ApiSite) -> None:
    assert (await api.client.get("/site/logo")).status == 404


def test_a_logo_must_be_svg_or_png() -> None:
    text = (
        '[site]\nid = "spa"\nname = "Spa"\nlogo = "/etc/passwd"\n\n'
        '[[rooms]]\nid = "a"\nname = "A"\n'
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "site.toml")
    assert caught.value.problems[0].startswith("site.toml:4: site.logo:")


async def test_guest_view_is_for_the_rooms_tablet_and_staff(api: ApiSite) -> None:
    paired = await api.pair("room-a")
    tablet = {"Authorization": f"Bearer {paired['token']}"}
    resp = await api.client.get("/api/v1/rooms/room-a/guest", headers=tablet)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["site"] == {
        "name": "API test spa", "timezone": "UTC", "locale": "en-US", "logo": None,
    }  # fmt: skip
    assert {"en", "es"} <= set(body["languages"])
    assert body["heaters"] == {}  # this site has no sauna
    resp = await api.client.get("/api/v1/rooms/room-b/guest", headers=tablet)
    assert resp.status == 403
    resp = await api.client.get("/api/v1/rooms/room-b/guest", headers=api.auth("staff1"))
    assert resp.status == 200


async def test_room_history_for_staff_with_hours_checked(api: ApiSite) -> None:
    await api.client.post(
        "/api/v1/rooms/room-a/devices/climate/command",
        json={"target_c": 22},
        headers=api.auth("staff1"),
    )
    resp = await api.client.get("/api/v1/rooms/room-a/history", headers=api.auth("staff1"))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert set(body["devices"]) == {"climate"}  # lights are not charted
    points = body["devices"]["climate"]
    assert points and points[-1]["temperature_c"] is not None
    assert [p["ts"] for p in points] == sorted(p["ts"] for p in points)
    for bad in ("0", "169", "abc"):
        resp = await api.client.get(
            f"/api/v1/rooms/room-a/history?hours={bad}", headers=api.auth("staff1")
        )
        assert resp.status == 422 and (await resp.json())["error"]["field"] == "hours"
    paired = await api.pair("room-a")
    resp = await api.client.get(
        "/api/v1/rooms/room-a/history", headers={"Authorization": f"Bearer {paired['token']}"}
    )
    assert resp.status == 403
