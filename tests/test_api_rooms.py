"""Rooms, scenes, device commands and tablets over the real API, against real
devices (simulated Zigbee2MQTT devices on Mosquitto)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from drivers.model import LightState
from edge.api import db
from edge.api.keys import METRICS
from tests.test_api_support import ApiSite, api, wait_until

__all__ = ["api"]

COMMAND = "/api/v1/rooms/{room}/devices/{device}/command"


def tablet_headers(paired: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {paired['token']}"}


async def test_staff_sees_every_room_with_state_and_limits(api: ApiSite) -> None:
    resp = await api.client.get("/api/v1/rooms", headers=api.auth("staff1"))
    assert resp.status == 200
    rooms = {r["room_id"]: r for r in (await resp.json())["rooms"]}
    assert set(rooms) == {"room-a", "room-b", "entrance"}
    ceiling = rooms["room-a"]["devices"]["ceiling"]
    assert ceiling["availability"] == "online" and ceiling["name"] == "Ceiling"
    assert ceiling["limits"]["max_brightness"] == 80
    assert "door" in rooms["entrance"]["devices"]


async def test_command_changes_the_device_and_is_logged(api: ApiSite) -> None:
    resp = await api.client.post(
        COMMAND.format(room="room-a", device="ceiling"),
        json={"on": True, "brightness": 40},
        headers=api.auth("staff1"),
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["result"] == "ok"
    device = api.core.room("room-a").devices["ceiling"]
    state = device.snapshot().state
    assert isinstance(state, LightState) and state.on and state.brightness == 40
    log = await api.core.store.commands()
    assert [(r["actor_kind"], r["actor_id"], r["result"]) for r in log] == [
        ("staff", "staff1", "ok")
    ]


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"on": True, "brightnes": 40}, "brightnes", "invalid_field"),
        ({"brightness": 95}, "brightness", "limit_violation"),
        ({"brightness": 2}, "brightness", "limit_violation"),
        ({"brightness": "40"}, "brightness", "invalid_field"),
        ({"brightness": 400}, "brightness", "invalid_field"),
        ({"on": "yes"}, "on", "invalid_field"),
        ({"target_c": 22}, "target_c", "invalid_field"),
        ({}, "command", "invalid_field"),
    ],
)
async def test_bad_commands_name_the_field_and_send_nothing(
    api: ApiSite, body: dict[str, Any], field: str, code: str
) -> None:
    sent_before = len(api.zigbee.devices["a_ceiling"].commands)
    resp = await api.client.post(
        COMMAND.format(room="room-a", device="ceiling"), json=body, headers=api.auth("admin")
    )
    assert resp.status == 422, await resp.text()
    error = (await resp.json())["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert field in error["message"]
    assert await api.core.store.commands() == []
    assert len(api.zigbee.devices["a_ceiling"].commands) == sent_before


async def test_malformed_json_names_the_body(api: ApiSite) -> None:
    resp = await api.client.post(
        COMMAND.format(room="room-a", device="ceiling"),
        data=b'{"on": tru',
        headers={**api.auth("admin"), "Content-Type": "application/json"},
    )
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["code"] == "malformed_json" and error["field"] == "body"
    assert await api.core.store.commands() == []


async def test_unknown_room_device_scene_are_404(api: ApiSite) -> None:
    h = api.auth("staff1")
    for method, path in [
        ("GET", "/api/v1/rooms/nowhere"),
        ("POST", "/api/v1/rooms/room-a/scenes/nope/activate"),
        ("POST", COMMAND.format(room="room-a", device="nope")),
    ]:
        resp = await api.client.request(method, path, json={"on": True}, headers=h)
        assert resp.status == 404, path
        assert (await resp.json())["error"]["code"] == "not_found"


async def test_driver_timeout_is_504_and_unavailable_503(api: ApiSite) -> None:
    api.core.command_timeout_s = 0.5
    api.zigbee.mute("a_accent")
    resp = await api.client.post(
        COMMAND.format(room="room-a", device="accent"), json={"on": True}, headers=api.auth("admin")
    )
    assert resp.status == 504
    body = await resp.json()
    assert body["error"]["code"] == "device_timeout"
    assert body["outcome"]["result"] == "timeout"
    api.zigbee.mute("a_accent", False)
    await api.zigbee.go_offline("b_main")
    device = api.core.room("room-b").devices["main"]
    await wait_until(lambda: device.snapshot().availability.value == "offline")
    resp = await api.client.post(
        COMMAND.format(room="room-b", device="main"), json={"on": True}, headers=api.auth("admin")
    )
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "device_unavailable"


async def test_scene_activation_by_staff(api: ApiSite) -> None:
    resp = await api.client.post(
        "/api/v1/rooms/room-a/scenes/relax/activate", headers=api.auth("staff1")
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["ok"] and {d["device_id"] for d in body["devices"]} == {
        "room-a/ceiling",
        "room-a/accent",
        "room-a/climate",
    }
    audit = await api.client.get("/api/v1/audit", headers=api.auth("admin"))
    entries = (await audit.json())["entries"]
    assert any(e["action"] == "scene.activate" and e["actor"] == "staff:staff1" for e in entries)


async def test_paired_tablet_controls_only_its_room(api: ApiSite) -> None:
    tablet = await api.pair("room-a")
    assert tablet["room_id"] == "room-a" and tablet["token"].startswith("cst_")
    h = tablet_headers(tablet)
    resp = await api.client.get("/api/v1/me", headers=h)
    assert (await resp.json()) == {
        "kind": "tablet",
        "tablet_id": tablet["tablet_id"],
        "room_id": "room-a",
    }
    resp = await api.client.get("/api/v1/rooms", headers=h)
    assert [r["room_id"] for r in (await resp.json())["rooms"]] == ["room-a"]
    assert (await api.client.get("/api/v1/rooms/room-a", headers=h)).status == 200
    resp = await api.client.post("/api/v1/rooms/room-a/scenes/bright/activate", headers=h)
    assert resp.status == 200, await resp.text()
    resp = await api.client.post(
        COMMAND.format(room="room-a", device="climate"), json={"target_c": 22.5}, headers=h
    )
    assert resp.status == 200, await resp.text()
    resp = await api.client.post(
        COMMAND.format(room="room-a", device="climate"), json={"target_c": 30.0}, headers=h
    )
    assert resp.status == 422 and (await resp.json())["error"]["field"] == "target_c"
    # Another room: refused before anything else is looked at.
    for method, path in [
        ("GET", "/api/v1/rooms/room-b"),
        ("GET", "/api/v1/rooms/room-b/scenes"),
        ("POST", "/api/v1/rooms/room-b/scenes/day/activate"),
        ("POST", COMMAND.format(room="room-b", device="main")),
    ]:
        resp = await api.client.request(method, path, json={"on": True}, headers=h)
        assert resp.status == 403, path
        assert (await resp.json())["error"]["code"] == "forbidden"
    # Staff-only areas.
    for path in ("/api/v1/door-events", "/api/v1/commands", "/api/v1/tablets", "/api/v1/users"):
        assert (await api.client.get(path, headers=h)).status == 403, path
    log = await api.core.store.commands()
    assert {r["device_id"] for r in log} == {"room-a/ceiling", "room-a/climate"}
    assert all(r["actor_kind"] == "tablet" for r in log)


async def test_tablet_cannot_unlock_or_see_doors(api: ApiSite) -> None:
    tablet = await api.pair("entrance")
    h = tablet_headers(tablet)
    resp = await api.client.post(
        COMMAND.format(room="entrance", device="door"), json={"locked": False}, headers=h
    )
    assert resp.status == 403
    assert (await resp.json())["error"]["field"] == "device_id"
    resp = await api.client.post("/api/v1/rooms/entrance/scenes/open/activate", headers=h)
    assert resp.status == 403
    room = await (await api.client.get("/api/v1/rooms/entrance", headers=h)).json()
    assert "door" not in room["devices"] and "light" in room["devices"]
    assert [s["id"] for s in room["scenes"]] == ["lights"]
    assert (await api.client.get("/api/v1/door-events", headers=h)).status == 403
    assert await api.core.store.commands() == []
    # Staff may unlock; it shows up among the door events.
    resp = await api.client.post(
        COMMAND.format(room="entrance", device="door"),
        json={"locked": False},
        headers=api.auth("staff1"),
    )
    assert resp.status == 200, await resp.text()
    events = (
        await (await api.client.get("/api/v1/door-events", headers=api.auth("staff1"))).json()
    )["events"]
    assert [(e["type"], e["device_id"]) for e in events] == [("lock_command", "entrance/door")]


async def test_pairing_code_is_single_use(api: ApiSite) -> None:
    resp = await api.client.post("/api/v1/rooms/room-b/pairing-codes", headers=api.auth("staff1"))
    code = (await resp.json())["code"]
    first = await api.client.post("/api/v1/tablets/pair", json={"code": code.lower()})
    assert first.status == 201
    again = await api.client.post("/api/v1/tablets/pair", json={"code": code})
    assert again.status == 422
    assert (await again.json())["error"]["field"] == "code"
    resp = await api.client.post("/api/v1/tablets/pair", json={"code": code, "pin": 1})
    assert resp.status == 422 and (await resp.json())["error"]["field"] == "pin"


async def test_pairing_code_expires(api: ApiSite) -> None:
    resp = await api.client.post("/api/v1/rooms/room-b/pairing-codes", headers=api.auth("staff1"))
    code = (await resp.json())["code"]
    # Age the code in the database rather than sleeping through its lifetime.
    await api.core.store.call(
        lambda c: c.execute(
            "UPDATE api_pairing_codes SET expires_at = ? WHERE code_hash = ?",
            (time.time() - 1, db.digest(code)),
        )
    )
    resp = await api.client.post("/api/v1/tablets/pair", json={"code": code})
    assert resp.status == 422


async def test_pairing_codes_need_staff_and_a_real_room(api: ApiSite) -> None:
    tablet = await api.pair("room-a")
    resp = await api.client.post(
        "/api/v1/rooms/room-a/pairing-codes", headers=tablet_headers(tablet)
    )
    assert resp.status == 403
    resp = await api.client.post("/api/v1/rooms/nowhere/pairing-codes", headers=api.auth("staff1"))
    assert resp.status == 404


async def test_revoked_tablet_gets_401(api: ApiSite) -> None:
    tablet = await api.pair("room-a", name="Room A wall")
    h = tablet_headers(tablet)
    assert (await api.client.get("/api/v1/rooms/room-a", headers=h)).status == 200
    listed = await (await api.client.get("/api/v1/tablets", headers=api.auth("staff1"))).json()
    row = next(t for t in listed["tablets"] if t["tablet_id"] == tablet["tablet_id"])
    assert row["name"] == "Room A wall" and row["revoked_at"] is None
    resp = await api.client.delete(
        f"/api/v1/tablets/{tablet['tablet_id']}", headers=api.auth("staff1")
    )
    assert resp.status == 200
    assert (await api.client.get("/api/v1/rooms/room-a", headers=h)).status == 401
    resp = await api.client.delete(
        f"/api/v1/tablets/{tablet['tablet_id']}", headers=api.auth("staff1")
    )
    assert resp.status == 404


async def test_healthz_and_metrics(api: ApiSite) -> None:
    resp = await api.client.get("/healthz")
    assert resp.status == 200 and (await resp.json())["database"] is True
    await api.client.post(
        COMMAND.format(room="room-a", device="ceiling"),
        json={"on": True},
        headers=api.auth("admin"),
    )
    metrics = api.client.app[METRICS]
    # The hub counts command results as it reads the event bus, just after the reply.
    await wait_until(lambda: metrics.value("coresync_device_commands_total", result="ok") == 1)
    resp = await api.client.get("/metrics")  # the test client connects over loopback
    assert resp.status == 200
    text = await resp.text()
    assert 'coresync_device_available{device="room-a/ceiling",room="room-a"} 1.0' in text
    assert 'route="/api/v1/rooms/{room_id}/devices/{device_id}/command"' in text
    assert "coresync_api_websocket_clients 0.0" in text
    assert 'coresync_device_commands_total{result="ok"} 1.0' in text
