"""Blinks at the camera's rate, and embedding once per track.

There is no recording of a live person blinking in the shared data, so the
blink is rendered from a dev photo (bench/bench_vision_attacks.py): the face
mesh finds the eyelids, and each upper lid is lowered over the eye by a
per-column remap that stretches the lid skin down (0.5, 1, 1, 0.5 of the
opening on four frames: ~270 ms at 15 fps), written as an MJPG clip and read
back as the door's file camera would.  The iris model's lid gap (vision.eyes)
sees it; the face mesh's own eye ratio moved < 5 % on the same frames.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from bench.bench_vision_attacks import blink_frames, camera_frame, write_clip
from edge.door.decision import DoorDecider
from vision.detect import Detection
from vision.liveness import LivenessConfig, LivenessTracker
from vision.matcher import AgreementConfig, MatchResult
from vision.mesh import MeshFeatures
from vision.pipeline import FaceAnalysis, FaceAnalyzer, FrameResult

Image = npt.NDArray[np.uint8]
FPS = 15.0


@pytest.fixture(scope="module")
def analyzer() -> Iterator[FaceAnalyzer]:
    yield FaceAnalyzer(descriptor=False)


def _clip_frames(path: Path) -> list[Image]:
    cap = cv2.VideoCapture(str(path))
    frames: list[Image] = []
    while True:
        ok, image = cap.read()
        if not ok:
            return frames
        frames.append(np.asarray(image, np.uint8))


def _verdict(analyzer: FaceAnalyzer, frames: list[Image]) -> tuple[bool, float]:
    tracker = LivenessTracker(LivenessConfig(mode="blink"))
    for i, frame in enumerate(frames):
        mesh = analyzer.analyze(frame, embed=False).faces[0].mesh
        assert mesh is not None and mesh.openness is not None
        tracker.add(i / FPS, mesh)
    verdict = tracker.verdict(len(frames) / FPS)
    return verdict.blink, verdict.min_ear_ratio


@pytest.mark.parametrize("photo", ["barack_obama/4.jpg", "joe_biden/1.jpg", "rose_leslie/2.jpg"])
def test_rendered_blink_at_15_fps_is_seen(
    shared_faces: Path, analyzer: FaceAnalyzer, tmp_path: Path, photo: str
) -> None:
    image = camera_frame(np.asarray(cv2.imread(str(shared_faces / "dev" / photo)), np.uint8))
    points = analyzer.analyze(image, embed=False).faces[0].points
    assert points is not None
    clip = write_clip(blink_frames(image, points, before=3, after=3), tmp_path / "b.avi", FPS)
    frames = _clip_frames(clip)
    assert len(frames) == 10
    blinked, lowest = _verdict(analyzer, frames)
    assert blinked and lowest < 0.7, lowest
    # The same clip without the blink: nothing.
    still = write_clip([frames[0]] * 10, tmp_path / "s.avi", FPS)
    assert _verdict(analyzer, _clip_frames(still)) == (False, pytest.approx(1.0, abs=0.05))


def _face(box: tuple[float, float, float, float], member: str | None, seq: int) -> FrameResult:
    detection = Detection(box, 0.9, np.zeros((6, 2), np.float32), "test")
    mesh = MeshFeatures(ear=0.3, yaw=0.0, pitch=0.0, presence=1.0, openness=0.07)
    match = MatchResult(member, member, 0.3, 1.0, "match") if member else None
    return FrameResult([FaceAnalysis(detection, None, mesh, match)], {}, seq, 100.0 + seq / FPS)


def test_embedding_once_per_track_until_agreed() -> None:
    decider = DoorDecider(None, AgreementConfig(), LivenessConfig(), 6.0, 8)
    box = (100.0, 100.0, 280.0, 300.0)
    assert decider.wants_embedding()
    for seq in range(3):
        assert decider.feed(_face(box, None, seq * 2)) is None  # mesh-only frames
        assert decider.feed_match(_face(box, "m1", seq * 2), 100.0 + seq) is None
    assert not decider.wants_embedding()  # agreed: mesh frames only until the decision
    # Somebody else steps in (the box jumps): a new track, embedding again.
    assert decider.feed(_face((400.0, 100.0, 580.0, 300.0), None, 10)) is None
    assert decider.wants_embedding()
    # A match from a frame taken before this track began does not vote for it.
    for _ in range(3):
        decider.feed_match(_face((400.0, 100.0, 580.0, 300.0), "m1", 9), 101.0)
    assert decider.wants_embedding()


def _sample(yaw: float, openness: float = 0.07) -> MeshFeatures:
    return MeshFeatures(ear=0.3, yaw=yaw, pitch=0.0, presence=1.0, openness=openness)


def test_challenge_counts_only_the_asked_evidence_after_the_prompt() -> None:
    config = LivenessConfig(mode="challenge")
    turning_left = [0.0, 0.0, 0.05, 0.12, 0.2, 0.2]  # yaw grows: the head turns to its left
    blink = [0.07, 0.07, 0.03, 0.02, 0.07, 0.07]

    def verdict(challenge: str, yaws: list[float], lids: list[float], prompt_at: float) -> bool:
        tracker = LivenessTracker(config)
        for i, (yaw, lid) in enumerate(zip(yaws, lids, strict=True)):
            tracker.add(float(i), _sample(yaw, lid))
        assert not tracker.verdict(5.0).passed  # nothing counts before a prompt
        tracker.start_challenge(challenge, prompt_at)  # type: ignore[arg-type]
        return tracker.verdict(5.0).passed

    assert verdict("turn_left", turning_left, [0.07] * 6, 0.0)
    assert not verdict("turn_right", turning_left, [0.07] * 6, 0.0)
    assert verdict("turn_right", [-y for y in turning_left], [0.07] * 6, 0.0)
    assert verdict("blink", [0.0] * 6, blink, 0.0)
    assert not verdict("blink", [0.0] * 6, blink, 4.0)  # the blink came before the prompt
    assert not verdict("turn_left", [0.0] * 6, blink, 0.0)  # a blink is not a turn


def test_challenge_mode_prompts_once_the_member_is_agreed() -> None:
    decider = DoorDecider(None, AgreementConfig(), LivenessConfig(mode="challenge"), 6.0, 8)
    box = (100.0, 100.0, 280.0, 300.0)
    for seq in range(3):
        decider.feed(_face(box, None, seq))
        assert decider.take_prompt() is None
        decider.feed_match(_face(box, "m1", seq), 100.0 + seq)
    prompt = decider.take_prompt()
    assert prompt in ("blink", "turn_left", "turn_right")
    assert decider.take_prompt() is None  # shown once
    assert decider.liveness.challenge == prompt


@pytest.mark.parametrize("rate", [15.0, 5.0])
def test_one_closed_sample_is_a_blink_only_at_a_slow_camera(rate: float) -> None:
    """At 15 fps a blink spans several frames and a single low frame is an outlier
    (the three-frame median removes it); at 5 fps one closed frame is all a blink
    leaves, so no median is applied (``blink_median_max_interval_s``)."""
    lids = [0.07] * 6 + [0.03] + [0.07] * 6
    tracker = LivenessTracker(LivenessConfig(mode="blink"))
    for i, lid in enumerate(lids):
        tracker.add(i / rate, _sample(0.0, lid))
    verdict = tracker.verdict(len(lids) / rate)
    assert verdict.passed is (rate == 5.0), verdict


@pytest.mark.parametrize("phase", [1, 2])
def test_rendered_blink_at_5_fps_is_seen(
    shared_faces: Path, analyzer: FaceAnalyzer, tmp_path: Path, phase: int
) -> None:
    """A 5 fps camera whose shutter falls on the closed part of the blink: one
    closed frame between open ones."""
    photo = "barack_obama/4.jpg"
    image = camera_frame(np.asarray(cv2.imread(str(shared_faces / "dev" / photo)), np.uint8))
    points = analyzer.analyze(image, embed=False).faces[0].points
    assert points is not None
    frames_15 = blink_frames(image, points, before=6, after=9)
    clip = write_clip(frames_15[phase::3], tmp_path / "b5.avi", 5.0)
    tracker = LivenessTracker(LivenessConfig(mode="blink"))
    frames = _clip_frames(clip)
    for i, frame in enumerate(frames):
        mesh = analyzer.analyze(frame, embed=False).faces[0].mesh
        assert mesh is not None
        tracker.add(i / 5.0, mesh)
    verdict = tracker.verdict(len(frames) / 5.0)
    assert verdict.blink and verdict.passed, verdict


def test_face_shape_ignores_the_image_plane_and_sees_foreshortening() -> None:
    """The blink's steadiness check: a shifted, scaled, rolled face keeps its
    shape; turning or tilting it (one length shortened) does not."""
    from vision.mesh import face_shape

    keypoints = np.array(
        [[100, 100], [160, 100], [130, 130], [130, 160], [70, 110], [190, 110]], np.float32
    )
    angle = math.radians(20)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    moved = (keypoints @ rot.T) * 1.7 + np.array([40.0, -25.0])
    assert face_shape(moved.astype(np.float32)) == pytest.approx(face_shape(keypoints), abs=1e-5)
    turned = keypoints * np.array([math.cos(math.radians(20)), 1.0], np.float32)
    change = abs(face_shape(turned) - face_shape(keypoints))  # type: ignore[operator]
    assert change > LivenessConfig().blink_max_shape_change
    assert face_shape(np.zeros((0, 2), np.float32)) is None  # HOG: no keypoints


@pytest.mark.parametrize(("shape_change", "blinked"), [(0.0, True), (0.1, False)])
def test_a_dip_counts_only_while_the_face_keeps_its_shape(
    shape_change: float, blinked: bool
) -> None:
    lids = [0.07] * 6 + [0.05, 0.03, 0.03, 0.05] + [0.07] * 6
    shapes = [0.0] * 6 + [shape_change] * 4 + [0.0] * 6
    tracker = LivenessTracker(LivenessConfig(mode="blink"))
    for i, (lid, shape) in enumerate(zip(lids, shapes, strict=True)):
        features = MeshFeatures(ear=0.3, yaw=0.0, pitch=0.0, presence=1.0, openness=lid)
        tracker.add(i / FPS, replace(features, shape=shape))
    assert tracker.verdict(len(lids) / FPS).blink is blinked
