"""Limits on every path: the effective state after any command is within the
limits, and command bodies take no coerced types.  A real site (Mosquitto,
Zigbee2MQTT simulator, SQLite) behind the LAN API."""

from __future__ import annotations

from typing import Any

import pytest

from drivers.model import LightState
from tests.test_api_support import ApiSite, wait_until
from tests.test_api_support import api as api

COMMAND = "/api/v1/rooms/room-a/devices/{device}/command"
MAX = 80  # room-a/ceiling: limits = { min_brightness = 5, max_brightness = 80 }


def ceiling(api: ApiSite) -> LightState:
    device, _ = api.core.device("room-a", "ceiling")
    state = device.snapshot().state
    assert isinstance(state, LightState)
    return state


@pytest.mark.parametrize("caller", ["staff1", "tablet"])
async def test_on_after_a_level_above_the_maximum_is_clamped(api: ApiSite, caller: str) -> None:
    # The light was left at 100 % at the device itself, then switched off.
    await api.zigbee.update("a_ceiling", state="OFF", brightness=254)
    await wait_until(lambda: ceiling(api).brightness == 100 and ceiling(api).on is False)
    if caller == "tablet":
        paired = await api.pair("room-a")
        headers = {"Authorization": f"Bearer {paired['token']}"}
    else:
        headers = api.auth(caller)
    sim = api.zigbee.devices["a_ceiling"]
    sent_before = len(sim.commands)
    resp = await api.client.post(
        COMMAND.format(device="ceiling"), json={"on": True}, headers=headers
    )
    assert resp.status == 200, await resp.text()
    state = ceiling(api)
    assert state.on is True and state.brightness is not None and state.brightness <= MAX, state
    sent = sim.commands[sent_before:]
    assert sent and all(c.get("brightness", 0) <= round(MAX * 254 / 100) for c in sent), sent


@pytest.mark.parametrize(
    ("device", "body", "field"),
    [
        ("climate", {"target_c": "22"}, "target_c"),
        ("climate", {"target_c": True}, "target_c"),
        ("ceiling", {"brightness": "50"}, "brightness"),
        ("ceiling", {"brightness": False}, "brightness"),
        ("ceiling", {"on": "true"}, "on"),
        ("ceiling", {"on": 1}, "on"),
        ("climate", {"mode": 1}, "mode"),
    ],
)
async def test_wrong_types_are_422_naming_the_field(
    api: ApiSite, device: str, body: dict[str, Any], field: str
) -> None:
    sim = api.zigbee.devices[f"a_{device}"]
    sent_before = len(sim.commands)
    resp = await api.client.post(
        COMMAND.format(device=device), json=body, headers=api.auth("staff1")
    )
    assert resp.status == 422, await resp.text()
    error = (await resp.json())["error"]
    assert error["field"] == field, error
    assert len(sim.commands) == sent_before  # nothing went to the device


async def test_an_int_is_still_a_valid_setpoint(api: ApiSite) -> None:
    resp = await api.client.post(
        COMMAND.format(device="climate"), json={"target_c": 22}, headers=api.auth("staff1")
    )
    assert resp.status == 200, await resp.text()
