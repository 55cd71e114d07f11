"""Tailgating: every face at the door is counted while it is open after an unlock.

The two-face clip is rendered from ``scenes/two_people.jpg`` (two people side
by side) drifting across the frame as people walking in would, written to the
test's temp dir.  Liveness is off here: this test is
about counting people, and a photo cannot blink.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import cv2
import numpy as np

from bench.bench_vision_attacks import camera_frame, write_clip
from edge.door.tailgate import CrossingCounter
from tests.test_api_support import ApiSite
from tests.test_door_service import door_config, door_with, new_member, site  # noqa: F401
from vision.camera import OpenCVSource
from vision.detect import Detection
from vision.pipeline import FaceAnalysis, FrameResult


def frame_with(*boxes: tuple[float, float, float, float]) -> FrameResult:
    faces = [
        FaceAnalysis(Detection(b, 0.9, np.zeros((6, 2), np.float32), "t"), None, None)
        for b in boxes
    ]
    return FrameResult(faces)


def test_counter_counts_people_not_frames() -> None:
    a, b = (100.0, 100.0, 200.0, 220.0), (300.0, 100.0, 400.0, 220.0)
    counter = CrossingCounter(min_frames=3)
    counter.start(1, "m1", until=10.0)
    for t in range(6):  # one person, lost for a frame now and then
        counter.feed(frame_with(a) if t != 3 else frame_with(), float(t))
    assert counter.feed(frame_with(a), 11.0) is None and not counter.watching
    counter.start(1, "m1", until=10.0)
    for t in range(5):
        counter.feed(frame_with(a, b), float(t))
    tailgate = counter.feed(frame_with(), 11.0)
    assert tailgate is not None and (tailgate.people, tailgate.granted) == (2, 1)
    assert tailgate.member_id == "m1"
    counter.start(1, "m1", until=10.0)  # a face in one frame only is not a person
    for t in range(5):
        counter.feed(frame_with(a, b) if t == 0 else frame_with(a), float(t))
    assert counter.feed(frame_with(), 11.0) is None


def two_people_clip(shared_faces: Path, path: Path) -> Path:
    scene = camera_frame(np.asarray(cv2.imread(str(shared_faces / "scenes" / "two_people.jpg"))))
    frames = []
    # Walking in: drifting right 2 px a frame, then back (so the looped clip never jumps).
    for i in [*range(40), *range(39, -1, -1)]:
        m = np.float32([[1, 0, 2 * i - 40], [0, 1, 0]])
        frames.append(cv2.warpAffine(scene, m, (scene.shape[1], scene.shape[0])))
    return write_clip(frames, path, 10.0)


async def test_two_people_on_one_unlock_raise_a_tailgate_event_and_alert(
    site: ApiSite,  # noqa: F811
    tmp_path: Path,
    shared_faces: Path,
) -> None:
    clip = two_people_clip(shared_faces, tmp_path / "two.avi")
    cfg = door_config(enroll_min_photos=1, relock_s=0.5, tailgate_window_s=3.0)
    door = await door_with(site, tmp_path, cfg)
    sub = site.core.events.subscribe(types={"door", "alert"})
    try:
        # The dev photos of these two do not match their faces in this scene (dlib
        # distance >= 0.74), so each is enrolled from their half of the scene itself.
        scene = (shared_faces / "scenes" / "two_people.jpg").read_bytes()
        image = cv2.imdecode(np.frombuffer(scene, np.uint8), cv2.IMREAD_COLOR)
        half = image.shape[1] // 2
        for name, part in (("Left Person", image[:, :half]), ("Right Person", image[:, half:])):
            member = await new_member(site, name)
            await door.grant_consent(member, "staff1", "door access by face")
            photo = cv2.imencode(".png", np.ascontiguousarray(part))[1].tobytes()
            await door.enroll_photos(member, [("half.png", photo)], "staff1")
        door.source = OpenCVSource(str(clip), loop=True, fps=10)
        await door.source.start()
        door._tasks.append(asyncio.create_task(door.camera_track().loop()))
        seen: list[tuple[str, dict[str, object]]] = []
        while not any(d.get("decision") == "tailgate" for _, d in seen):
            try:
                event = await asyncio.wait_for(sub.get(), 60)
            except TimeoutError:
                raise AssertionError(f"no tailgate event; saw {seen}") from None
            seen.append((event.type, event.data))
        kinds = [d.get("decision") or d.get("kind") for _, d in seen]
        assert "unlock" in kinds and kinds.index("unlock") < kinds.index("tailgate"), kinds
        unlock = next(d for _, d in seen if d.get("decision") == "unlock")
        tailgate = next(d for _, d in seen if d.get("decision") == "tailgate")
        assert tailgate["member_id"] == unlock["member_id"]
        assert str(tailgate["reason"]).startswith("2 people at the door on one unlock for 1")
        # The door raises the alert itself, of the kind staff channels forward.
        alerts = [d for t, d in seen if t == "alert"]
        while not any(a.get("kind") == "tailgate" for a in alerts):
            event = await asyncio.wait_for(sub.get(), 10)
            if event.type == "alert":
                alerts.append(event.data)
        stored = await door.vault.events(limit=20)
        assert any(e.decision == "tailgate" for e in stored)
    finally:
        sub.close()
        await door.stop()
