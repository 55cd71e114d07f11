"""The challenge on the door display, end to end: a real ``coresync-edge run``
whose door camera is a clip of the enrolled member blinking (rendered from a
dev photo, tests/test_door_attacks.py), a simulated Zigbee lock and the door
display topic on the real Mosquitto.

The site is closed (``[opening_hours]`` opens no day) and the door's schedule
says: while closed, face and PIN, and a challenge.  The display must show the
prompt drawn for the member, the face attempt's door event must name the
period in force, and nothing opens without the PIN.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import aiomqtt
import cv2
import numpy as np
import pytest

from bench.bench_vision_attacks import blink_frames, camera_frame, write_clip
from drivers.mqtt.config import MqttBrokerConfig
from drivers.mqtt.connection import MqttConnection
from drivers.mqtt.simulator import ZigbeeSimulator
from edge.door.display import PROMPTS, DoorDisplay, display_message, display_topic
from tests.conftest import Broker, free_port
from tests.door_daemon import enrolled_door_site, run_cli
from tests.edge_process import EdgeProcess
from tests.edge_site import wait_until, zigbee_devices
from tests.test_api_support import ApiSite
from tests.test_door_service import door_config, site  # noqa: F401
from vision.pipeline import FaceAnalyzer

FPS = 15.0
DOOR = """
[opening_hours]
holidays = []

[door]
room = "entrance"
lock = "door"
camera = "{camera}"
camera_fps = 15
camera_loop = true
relock_s = 0.5
decision_window_s = 3.0
liveness = {{ window_s = 3.0 }}
access = {{ site_hours = false }}

[[door.security.schedule]]
name = "closed"
site = "closed"
mode = "face_and_pin"
challenge = true
"""


def test_display_messages_carry_no_member_and_no_reason() -> None:
    event = {"decision": "challenge", "reason": "turn_left", "ts": 10.0, "member_id": "m1"}
    assert display_message(event, 3.0) == {
        "state": "challenge",
        "prompt": "turn_left",
        "text": PROMPTS["turn_left"],
        "ts": 10.0,
        "until": 13.0,
    }
    deny = {"decision": "deny", "reason": "membership_inactive", "ts": 1.0, "member_id": "m1"}
    shown = display_message(deny, 3.0)
    assert shown is not None and shown["state"] == "refused"
    assert "m1" not in json.dumps(shown) and "membership" not in json.dumps(shown)
    pending = {"decision": "pending", "reason": "awaiting_pin", "ts": 1.0}
    assert (display_message(pending, 3.0) or {})["state"] == "enter_pin"
    remote = {"decision": "unlock", "method": "remote", "reason": "remote: courier", "ts": 1.0}
    assert display_message(remote, 3.0) is None  # nobody at the door to greet
    tailgate = {"decision": "tailgate", "reason": "2 people", "ts": 1.0}
    assert display_message(tailgate, 3.0) is None


async def test_a_display_that_cannot_be_reached_leaves_the_door_alone(
    site: ApiSite,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The broker unreachable (a port nobody listens on): each message is a
    warning, nothing more; the display keeps taking door events."""
    unreachable = MqttConnection(
        MqttBrokerConfig(host="127.0.0.1", port=free_port()), site_id="display-down"
    )
    display = DoorDisplay(site.core, unreachable, door_config())
    listening = site.core.events.subscriber_count
    task = asyncio.create_task(display.run())
    try:
        await wait_until(lambda: site.core.events.subscriber_count > listening)
        for ts in (1.0, 2.0):
            site.core.events.publish("door", {"decision": "challenge", "reason": "blink", "ts": ts})
        warned = "door display message not published"
        await wait_until(lambda: sum(warned in r.getMessage() for r in caplog.records) == 2)
        assert not task.done() and display.published == 0
    finally:
        task.cancel()
        await asyncio.wait([task])


def render_clip(shared_faces: Path, path: Path) -> Path:
    analyzer = FaceAnalyzer(descriptor=False)
    photo = np.asarray(cv2.imread(str(shared_faces / "dev" / "barack_obama" / "4.jpg")), np.uint8)
    live = camera_frame(photo)
    points = analyzer.analyze(live, embed=False).faces[0].points
    assert points is not None
    frames: list[Any] = []
    for _ in range(4):  # a blink every ~1.5 s
        frames += blink_frames(live, points, before=15, after=6)
    return write_clip(frames, path, FPS)


@pytest.mark.slow  # ~30-60 s: a daemon with a door camera
async def test_the_closed_hours_challenge_reaches_the_display_and_is_named(
    mqtt_broker: Broker, tmp_path: Path, shared_faces: Path
) -> None:
    clip = await asyncio.to_thread(render_clip, shared_faces, tmp_path / "door.avi")
    tag = uuid.uuid4().hex[:8]
    site_id, base = f"display-{tag}", f"display-z2m-{tag}"
    config, data, cfg, _ = await enrolled_door_site(
        mqtt_broker, tmp_path, shared_faces, site_id, base, DOOR.format(camera=clip)
    )

    zigbee = ZigbeeSimulator(
        mqtt_broker.host, mqtt_broker.port, base=base, devices=zigbee_devices(cfg)
    )
    await zigbee.start()
    daemon = EdgeProcess(config, data)
    shown: list[dict[str, Any]] = []
    try:
        async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port) as display:
            await display.subscribe(display_topic(site_id, "entrance", "door"), qos=1)
            await daemon.start()
            async with asyncio.timeout(120):  # the door may lag behind on a loaded machine
                async for msg in display.messages:
                    shown.append(json.loads(bytes(msg.payload)))  # type: ignore[arg-type]
                    # The challenge, then the attempt's outcome on the display.
                    if any(m["state"] == "challenge" for m in shown) and shown[-1]["state"] in (
                        "enter_pin",
                        "refused",
                    ):
                        break
        out = await run_cli("events", "--door", "--json", "--limit", "50", "--data-dir", str(data))
    finally:
        await daemon.stop()
        await zigbee.stop()
    events = list(reversed(json.loads(out)))  # oldest first
    challenge = next(m for m in shown if m["state"] == "challenge")
    assert challenge["prompt"] in PROMPTS and challenge["text"] == PROMPTS[challenge["prompt"]]
    assert challenge["until"] > challenge["ts"]
    prompts = [e["reason"] for e in events if e["decision"] == "challenge"]
    assert challenge["prompt"] in prompts, events
    faces = [e for e in events if e["method"] == "face" and e["decision"] != "challenge"]
    assert faces, events
    closed = {"mode": "face_and_pin", "challenge": True, "period": "closed"}
    assert all(e["security"] == closed for e in faces), faces
    # face_and_pin: a face alone never opens, whatever the challenge drew.
    assert not any(e["decision"] == "unlock" for e in events), events
    outcomes = {(e["decision"], e["reason"]) for e in faces}
    # A blink drawn: the clip does it, and the door waits for the PIN; a turn
    # drawn: the clip never turns, and liveness fails.
    assert outcomes <= {("pending", "awaiting_pin"), ("deny", "liveness_failed")}, outcomes
