"""The sauna numbers of the guest tablet (edge/guest.py): the heat-up rate
from state history, "ready in", and when no estimate is honest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from edge.config import SceneConfig
from edge.guest import heat_rate_c_per_min, heater_view, scene_mood

T0 = datetime(2026, 3, 7, 15, 0, tzinfo=UTC)


def row(seconds: float, current: float, mode: str = "heat", online: bool = True) -> dict[str, Any]:
    return {
        "ts": (T0 + timedelta(seconds=seconds)).isoformat(),
        "availability": "online" if online else "offline",
        "state": {"mode": mode, "current_c": current, "target_c": 80.0},
    }


def test_rate_from_the_latest_heating_run() -> None:
    # Newest first: 2 degC/min over the last two minutes; older rows were idle.
    history = [row(240, 44.0), row(180, 42.0), row(120, 40.0), row(60, 40.0, mode="off")]
    assert heat_rate_c_per_min(history) == 2.0
    view = heater_view(history[0]["state"], history, None)
    assert view["ready_in_min"] == 18 and not view["ready"]  # (80 - 44) / 2


def test_no_estimate_from_noise_or_a_gap() -> None:
    assert heat_rate_c_per_min([row(10, 40.2), row(9, 40.0)]) is None  # too close, too small
    assert heat_rate_c_per_min([row(300, 60.0), row(200, 50.0, online=False)]) is None
    flat = [row(120, 40.0), row(0, 40.1)]
    assert heater_view(flat[0]["state"], flat, None)["ready_in_min"] is None


def test_ready_within_a_degree_and_idle_when_off() -> None:
    state = {"mode": "heat", "current_c": 79.2, "target_c": 80.0}
    assert heater_view(state, [], None)["ready"] is True
    off = heater_view({"mode": "off", "current_c": 30.0, "target_c": 80.0}, [], None)
    assert off == {**off, "heating": False, "ready": False, "session_left_s": None}


def test_scene_mood_from_its_lights() -> None:
    def scene(**devices: dict[str, Any]) -> SceneConfig:
        return SceneConfig.model_validate({"id": "s", "name": "S", "devices": devices})

    assert scene_mood(scene(a={"on": True, "brightness": 30}, b={"on": False})) == "dim"
    assert scene_mood(scene(a={"on": True, "brightness": 30}, b={"on": True})) == "bright"
    assert scene_mood(scene(a={"on": True, "brightness": 80})) == "bright"
    assert scene_mood(scene(heater={"mode": "heat", "target_c": 80})) is None
