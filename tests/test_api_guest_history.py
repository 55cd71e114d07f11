"""The guest tablet's extras and the room history over the real API: who may
read them, and bad input named."""

from __future__ import annotations

from tests.test_api_support import ApiSite, api

__all__ = ["api"]


async def test_guest_view_is_for_the_rooms_tablet_and_staff(api: ApiSite) -> None:
    paired = await api.pair("room-a")
    tablet = {"Authorization": f"Bearer {paired['token']}"}
    resp = await api.client.get("/api/v1/rooms/room-a/guest", headers=tablet)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["site"] == {"name": "API test spa", "timezone": "UTC", "locale": "en-US"}
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
