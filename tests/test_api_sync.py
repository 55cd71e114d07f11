"""Sync status over the LAN API (stand-alone here; the daemon-with-cloud case
is in test_edge_sync_daemon.py)."""

from __future__ import annotations

from tests.test_api_support import ApiSite, api

__all__ = ["api"]


async def test_staff_see_sync_status_of_a_stand_alone_spa(api: ApiSite) -> None:
    resp = await api.client.get("/api/v1/sync/status", headers=api.auth("staff1"))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["enabled"] is False and body["cloud"] is None
    assert body["queue_depth"] >= 0
    assert body["attention"] == []


async def test_sync_status_needs_staff(api: ApiSite) -> None:
    assert (await api.client.get("/api/v1/sync/status")).status == 401
    tablet = await api.pair("room-a")
    resp = await api.client.get(
        "/api/v1/sync/status", headers={"Authorization": f"Bearer {tablet['token']}"}
    )
    assert resp.status == 403
