"""Print attacks and a live stand-in end to end: a real ``coresync-edge run`` whose
door camera is a video file, a simulated Zigbee lock on the real Mosquitto.

The clip (rendered by bench/bench_vision_attacks.py into the test's temp dir,
never committed) plays, with a bare wall between them: a flat print of the
enrolled member held up for 3 s, then rocked +-45 degrees about both axes,
a curved print the same way, then the member's photo blinking (the live stand-in: there is no
recording of a live person blinking in the shared data).  Each print is
recognised as the member and refused for liveness; the blinking stand-in
unlocks.  Default liveness settings, except a shorter decision window so the
clip stays short.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from bench.bench_vision_attacks import (
    FRAME_H,
    FRAME_W,
    WALL_BGR,
    PrintAttack,
    blink_frames,
    camera_frame,
    print_attack_frames,
    write_clip,
)
from drivers.mqtt.simulator import ZigbeeSimulator
from tests.conftest import Broker
from tests.door_daemon import enrolled_door_site, run_cli
from tests.edge_process import EdgeProcess
from tests.edge_site import zigbee_devices
from vision.pipeline import FaceAnalyzer

FPS = 15.0
DOOR = """
[door]
room = "entrance"
lock = "door"
camera = "{camera}"
camera_fps = 15
relock_s = 0.5
decision_window_s = 3.0
liveness = {{ window_s = 3.0 }}
"""


def render_clip(shared_faces: Path, path: Path) -> Path:
    analyzer = FaceAnalyzer(descriptor=False)
    photo = np.asarray(cv2.imread(str(shared_faces / "dev" / "barack_obama" / "4.jpg")), np.uint8)
    box = analyzer.analyze(photo, embed=False).faces[0].detection.box
    wall = np.empty((FRAME_H, FRAME_W, 3), np.uint8)
    wall[:] = WALL_BGR
    gap = [wall] * int(2 * FPS)
    frames: list[Any] = list(gap)
    for surface in ("flat", "curved"):
        # Held up for recognition first, then rocked (what got prints in before).
        attack = PrintAttack(surface, "both", 45.0, FPS, seconds=9.0, seed=3, hold_s=3.0)
        frames += list(print_attack_frames(photo, box, attack)) + gap
    live = camera_frame(photo)
    points = analyzer.analyze(live, embed=False).faces[0].points
    assert points is not None
    for _ in range(3):  # three blinks over ~5 s
        frames += blink_frames(live, points, before=15, after=6)
    frames += gap
    return write_clip(frames, path, FPS)


@pytest.mark.slow  # ~1-2.5 min: a 31 s clip through a real daemon
async def test_prints_are_refused_and_the_live_stand_in_unlocks(
    mqtt_broker: Broker, tmp_path: Path, shared_faces: Path
) -> None:
    clip = await asyncio.to_thread(render_clip, shared_faces, tmp_path / "door.avi")
    tag = uuid.uuid4().hex[:8]
    base = f"attack-z2m-{tag}"
    config, data, cfg, member = await enrolled_door_site(
        mqtt_broker, tmp_path, shared_faces, f"attack-{tag}", base, DOOR.format(camera=clip)
    )

    zigbee = ZigbeeSimulator(
        mqtt_broker.host, mqtt_broker.port, base=base, devices=zigbee_devices(cfg)
    )
    await zigbee.start()
    daemon = EdgeProcess(config, data)
    try:
        await daemon.start()
        events: list[dict[str, Any]] = []
        for _ in range(240):  # the clip is ~31 s; the door may lag behind on a loaded machine
            out = await run_cli(
                "events", "--door", "--json", "--limit", "50", "--data-dir", str(data)
            )
            events = list(reversed(json.loads(out)))  # oldest first
            if any(e["decision"] == "unlock" for e in events):
                break
            await asyncio.sleep(0.5)
    finally:
        await daemon.stop()
        await zigbee.stop()
    decisions = [(e["decision"], e["reason"], e["member_id"]) for e in events]
    unlocks = [d for d in decisions if d[0] == "unlock"]
    assert unlocks == [("unlock", "unlocked", member)], decisions
    before = decisions[: decisions.index(unlocks[0])]
    # The prints were recognised as the member, and refused for liveness.
    assert ("deny", "liveness_failed", member) in before, decisions
    assert all(d[0] == "deny" for d in before), decisions
