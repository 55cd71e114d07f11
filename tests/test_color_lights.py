"""Colour lights: xy colour in the light model, Zigbee2MQTT ``color`` and Home
Assistant JSON ``color`` on the wire, colour in scenes and limits.  Real
Mosquitto and the Zigbee2MQTT simulator; the codec parts are pure."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from drivers.color import parse_color, rgb_to_xy, xy_close, xy_to_hex
from drivers.model import DeviceKind, LightCommand, LightState, command_satisfied
from drivers.mqtt.codec import (
    decode_ha_json_light,
    decode_z2m_state,
    encode_ha_json_light,
    encode_z2m_command,
)
from drivers.mqtt.errors import MqttCodecError
from edge.config import parse_config
from edge.core import Actor
from edge.errors import ConfigError, InvalidCommand, LimitViolation
from tests.conftest import Broker
from tests.edge_site import start_edge

RED = (0.6401, 0.33)


def test_colour_forms_meet_in_xy() -> None:
    assert parse_color("#ff0000") == RED
    assert parse_color({"r": 255, "g": 0, "b": 0}) == RED
    assert parse_color({"x": 0.64012, "y": 0.33}) == RED
    assert xy_to_hex(parse_color("#00ff00")) == "#00ff00"
    assert rgb_to_xy(255, 255, 255) == (0.3127, 0.329)
    for bad in ("red", "#ff00", {"x": 1.5, "y": 0.2}, {"r": 300, "g": 0, "b": 0}, {"h": 1}):
        with pytest.raises(ValueError):
            parse_color(bad)


def test_wire_formats() -> None:
    command = LightCommand(on=True, color_xy=RED)
    assert json.loads(encode_z2m_command(DeviceKind.LIGHT, command)) == {
        "state": "ON",
        "color": {"x": 0.6401, "y": 0.33},
    }
    assert json.loads(encode_ha_json_light(command, 255)) == {
        "state": "ON",
        "color": {"r": 255, "g": 0, "b": 0},
    }
    assert json.loads(encode_ha_json_light(LightCommand(color_xy=RED), 255, "xy")) == {
        "state": "ON",
        "color": {"x": 0.6401, "y": 0.33},
    }
    # Z2M reports xy; HA JSON lights report rgb or xy; a hue/saturation-only
    # report keeps the last xy.
    z2m = decode_z2m_state(DeviceKind.LIGHT, b'{"color":{"x":0.64,"y":0.33}}', LightState())
    assert isinstance(z2m, LightState) and z2m.color_xy == (0.64, 0.33)
    ha = decode_ha_json_light(b'{"state":"ON","color":{"r":255,"g":0,"b":0}}', LightState(), 255)
    assert ha.color_xy == RED and ha.on is True
    kept = decode_z2m_state(DeviceKind.LIGHT, b'{"color":{"hue":0,"saturation":100}}', ha)
    assert isinstance(kept, LightState) and kept.color_xy == RED
    with pytest.raises(MqttCodecError):
        decode_z2m_state(DeviceKind.LIGHT, b'{"color":"red"}', LightState())
    # A bulb reports its own gamut's nearest colour, rounded: close counts.
    assert command_satisfied(LightState(on=True, color_xy=(0.6453, 0.3333)), command)
    assert not command_satisfied(LightState(on=True, color_xy=(0.3, 0.6)), command)
    assert xy_close((0.5, 0.5), (0.509, 0.491))


SITE = """\
[site]
id = "{tag}"
name = "Colour"
[mqtt]
host = "{host}"
port = {port}
zigbee2mqtt_base = "{tag}/z2m"
[[rooms]]
id = "spa"
name = "Chromotherapy"
  [[rooms.devices]]
  id = "cove"
  kind = "light"
  type = "zigbee2mqtt"
  friendly_name = "cove"
  [[rooms.devices]]
  id = "white"
  kind = "light"
  type = "zigbee2mqtt"
  friendly_name = "white"
  limits = {{ allow_color = false }}
  [[rooms.scenes]]
  id = "blue"
  name = "Blue"
  devices.cove = {{ on = true, brightness = 40, color = "#0000ff" }}
  devices.white = {{ on = true, color_temp_k = 3000 }}
"""


async def test_colour_commands_scenes_and_limits(mqtt_broker: Broker, tmp_path: Path) -> None:
    tag = f"colour-{uuid.uuid4().hex[:8]}"
    cfg = parse_config(SITE.format(tag=tag, host=mqtt_broker.host, port=mqtt_broker.port))
    zigbee, service, core = await start_edge(cfg, mqtt_broker, tmp_path)
    staff = Actor("staff", "t")
    try:
        outcome = await core.command("spa", "cove", {"on": True, "color": "#ff0000"}, staff)
        assert outcome.ok, outcome
        assert zigbee.devices["cove"].commands[-1]["color"] == {"x": 0.6401, "y": 0.33}
        cove = core.device("spa", "cove")[0].snapshot().state
        assert isinstance(cove, LightState) and cove.color_xy == RED
        outcome = await core.command("spa", "cove", {"color": {"r": 0, "g": 255, "b": 0}}, staff)
        assert outcome.ok, outcome
        # A scene sets colour on one light and colour temperature on the other.
        result = await core.activate_scene("spa", "blue", staff)
        assert result.ok, result.as_dict()
        cove = core.device("spa", "cove")[0].snapshot().state
        assert isinstance(cove, LightState) and cove.color_xy == parse_color("#0000ff")
        # The room view carries it (what tablets and the retained MQTT state get).
        view = json.loads(core.views.encoded("spa", "tablet"))
        assert view["devices"]["cove"]["state"]["color_xy"] == list(parse_color("#0000ff"))
        assert view["devices"]["white"]["limits"]["allow_color"] is False
        # Kept to white: refused before anything is sent.
        sent = len(zigbee.devices["white"].commands)
        with pytest.raises(LimitViolation) as refused:
            await core.command("spa", "white", {"color": "#ff0000"}, staff)
        assert refused.value.field == "color"
        assert len(zigbee.devices["white"].commands) == sent
        with pytest.raises(InvalidCommand) as both:
            await core.command("spa", "cove", {"color": "#ff0000", "color_temp_k": 3000}, staff)
        assert both.value.field == "color"
        with pytest.raises(InvalidCommand):
            await core.command("spa", "cove", {"color": "magenta"}, staff)
        # The stored state round-trips the colour.
        stored = await service.store.load_states()
        saved = stored["spa/cove"].state
        assert isinstance(saved, LightState) and saved.color_xy == parse_color("#0000ff")
    finally:
        await service.stop()
        await zigbee.stop()


def test_a_scene_colour_on_a_light_kept_to_white_is_a_config_error() -> None:
    text = SITE.format(tag="c", host="127.0.0.1", port=1883).replace(
        "devices.white = { on = true, color_temp_k = 3000 }",
        'devices.white = { on = true, color = "#ff0000" }',
    )
    with pytest.raises(ConfigError, match="allow_color"):
        parse_config(text)
