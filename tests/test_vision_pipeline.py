"""Detection, embedding, matching, quality and liveness on the real dev photos."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from vision.detect import FULL_RANGE, SHORT_RANGE, BlazeFace, HogDetector, ssd_anchors
from vision.liveness import LivenessConfig, LivenessTracker, detect_blink
from vision.matcher import AgreementConfig, FrameAgreement, Matcher
from vision.mesh import MeshFeatures
from vision.pipeline import FaceAnalyzer
from vision.quality import check_quality

Image = npt.NDArray[np.uint8]


@pytest.fixture(scope="module")
def analyzer() -> Iterator[FaceAnalyzer]:
    yield FaceAnalyzer()


def _load(path: Path) -> Image:
    image = cv2.imread(str(path))
    assert image is not None, path
    return np.asarray(image, np.uint8)


def _embedding(analyzer: FaceAnalyzer, path: Path) -> np.ndarray:
    result = analyzer.analyze(_load(path))
    assert result.faces, f"no face in {path}"
    emb = result.faces[0].embedding
    assert emb is not None
    return emb.vector


def test_anchor_counts_match_model_outputs() -> None:
    assert len(ssd_anchors(SHORT_RANGE)) == 896
    assert len(ssd_anchors(FULL_RANGE)) == 2304
    # The model constructors compare against their own output tensor shape too.
    assert len(BlazeFace("short").anchors) == 896
    assert len(BlazeFace("full").anchors) == 2304


@pytest.mark.parametrize("model", ["short", "full"])
def test_blazeface_finds_the_face_in_every_dev_photo(shared_faces: Path, model: str) -> None:
    detector = BlazeFace(model)  # type: ignore[arg-type]
    hog_boxes = HogDetector()
    for path in sorted((shared_faces / "dev").glob("*/*")):
        image = _load(path)
        found = detector.detect(image)
        assert len(found) == 1, f"{model}: {len(found)} faces in {path}"
        # Boxes land on the same face as dlib's detector, in image coordinates.
        [ref] = hog_boxes.detect(image)
        cx = (found[0].box[0] + found[0].box[2]) / 2
        assert ref.box[0] < cx < ref.box[2], path
        assert found[0].keypoints.shape == (6, 2)


def test_hog_fallback_finds_faces(shared_faces: Path) -> None:
    hog = HogDetector()
    found = hog.detect(_load(shared_faces / "scenes" / "two_people.jpg"))
    assert len(found) == 2 and all(d.detector == "hog" for d in found)
    assert hog.detect(np.full((240, 320, 3), 128, np.uint8)) == []


def test_genuine_matches_and_impostor_does_not(shared_faces: Path, analyzer: FaceAnalyzer) -> None:
    dev = shared_faces / "dev"
    ids: list[str] = []
    templates: list[np.ndarray] = []
    for person, photos in {
        "obama": ["barack_obama/1.jpg", "barack_obama/2.jpg"],
        "biden": ["joe_biden/1.jpg"],
        "kit": ["kit_harington/1.jpg", "kit_harington/2.jpg"],
        "rose": ["rose_leslie/1.jpg"],
        "alex": ["alex_lacamoire/1.jpg", "alex_lacamoire/2.png"],
    }.items():
        for photo in photos:
            ids.append(person)
            templates.append(_embedding(analyzer, dev / photo))
    matcher = Matcher(ids, np.stack(templates))
    for photo in ("barack_obama/3.jpg", "barack_obama/4.jpg"):
        result = matcher.match(_embedding(analyzer, dev / photo))
        assert result.member_id == "obama", (photo, result)
    assert matcher.match(_embedding(analyzer, dev / "kit_harington/3.jpg")).member_id == "kit"
    impostor = matcher.match(_embedding(analyzer, dev / "lin_manuel_miranda/1.png"))
    assert impostor.member_id is None and impostor.reason in {"too_far", "ambiguous"}
    # An enrolled person's unseen photo must not match when that person is not enrolled.
    without_obama = Matcher(
        [i for i in ids if i != "obama"],
        np.stack([t for i, t in zip(ids, templates, strict=True) if i != "obama"]),
    )
    assert without_obama.match(_embedding(analyzer, dev / "barack_obama/3.jpg")).member_id is None


def test_margin_rule_rejects_ambiguous_members() -> None:
    rng = np.random.default_rng(0)
    probe = rng.normal(0, 0.1, 128).astype(np.float32)
    a = probe + 0.01
    b = probe - 0.01
    result = Matcher(["a", "b"], np.stack([a, b])).match(probe)
    assert result.reason == "ambiguous" and result.member_id is None
    # Several templates of one member are not ambiguous with each other.
    assert Matcher(["a", "a"], np.stack([a, b])).match(probe).member_id == "a"
    assert Matcher([], np.zeros((0, 128), np.float32)).match(probe).reason == "no_templates"


def test_frame_agreement_k_of_n() -> None:
    agree = FrameAgreement(AgreementConfig(required=3, window=4))
    assert [agree.push(v) for v in ["a", "b", "a"]] == [None, None, None]
    assert agree.push("a") == "a"  # a, b, a, a in the last four
    assert agree.push(None) is None  # b, a, a, None
    consecutive = FrameAgreement(AgreementConfig(required=2, window=2))
    assert [consecutive.push(v) for v in ["a", "b", "b"]] == [None, None, "b"]
    with pytest.raises(ValueError, match="window"):
        AgreementConfig(required=3, window=2)


def test_quality_gate_reports_every_reason(shared_faces: Path, analyzer: FaceAnalyzer) -> None:
    image = _load(shared_faces / "scenes" / "two_people.jpg")
    report = check_quality(image, analyzer.detector.detect_all(image))
    assert not report.ok and "multiple_faces" in report.codes
    scale = 0.15
    small = np.asarray(
        cv2.GaussianBlur(cv2.resize(image, None, fx=scale, fy=scale), (0, 0), 2), np.uint8
    )
    face = analyzer.detector.detect_all(image)[0]
    shrunk = replace(
        face,
        box=tuple(v * scale for v in face.box),  # type: ignore[arg-type]
        keypoints=face.keypoints * scale,
    )
    report = check_quality(small, [shrunk])
    assert {"face_too_small", "blurry"} <= set(report.codes), report.codes
    assert check_quality(image, []).codes == ["no_face"]
    good = _load(shared_faces / "dev" / "barack_obama" / "1.jpg")
    result = analyzer.analyze(good)
    assert result.faces[0].embedding is not None
    report = check_quality(
        good, analyzer.detector.detect_all(good), result.faces[0].embedding.landmarks
    )
    assert report.ok, report.issues
    partial = _load(shared_faces / "scenes" / "obama_partial_face.jpg")
    assert "face_cut_off" in check_quality(partial, analyzer.detector.detect_all(partial)).codes


def _still_photo_replay(image: Image, frames: int, seed: int) -> Iterator[Image]:
    """The same photo with small random shifts, zoom, in-plane tilt and brightness."""
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    for _ in range(frames):
        m = np.asarray(
            cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-4, 4), rng.uniform(0.9, 1.1)),
            np.float64,
        )
        m[:, 2] += rng.uniform(-0.03, 0.03, 2) * np.array([w, h], np.float64)
        moved = cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
        bright = cv2.convertScaleAbs(
            moved, alpha=rng.uniform(0.75, 1.25), beta=rng.uniform(-15, 15)
        )
        yield np.asarray(bright, np.uint8)


@pytest.mark.parametrize(
    "photo", ["barack_obama/1.jpg", "kit_harington/3.jpg", "rose_leslie/2.jpg"]
)
def test_still_photo_replay_never_passes_liveness(
    shared_faces: Path, analyzer: FaceAnalyzer, photo: str
) -> None:
    image = _load(shared_faces / "dev" / photo)
    tracker = LivenessTracker(LivenessConfig(mode="blink_or_motion", window_s=10))
    for i, frame in enumerate(_still_photo_replay(image, 30, seed=len(photo))):
        mesh = analyzer.analyze(frame).faces[0].mesh
        assert mesh is not None
        tracker.add(i * 0.1, mesh)
        verdict = tracker.verdict(i * 0.1)
        assert not verdict.passed, (i, verdict)
    assert verdict.samples == 30


def test_real_pose_changes_give_motion_evidence(shared_faces: Path, analyzer: FaceAnalyzer) -> None:
    """Four real photos of one person with different head poses stand in for a turning
    head.  This shows the features respond to real 3D pose change; it is not a recording
    of a live person at the door."""
    tracker = LivenessTracker(LivenessConfig(mode="motion", window_s=10, min_samples=5))
    photos = [f"barack_obama/{n}.jpg" for n in (1, 2, 3, 4)]
    for i, photo in enumerate(photos * 2):  # each pose held for two frames
        mesh = analyzer.analyze(_load(shared_faces / "dev" / photo)).faces[0].mesh
        assert mesh is not None
        tracker.add(i * 0.2, mesh)
    verdict = tracker.verdict()
    assert verdict.motion and verdict.passed, verdict
    assert not verdict.blink


def _features(ear: float, yaw: float = 0.0) -> MeshFeatures:
    return MeshFeatures(ear=ear, yaw=yaw, pitch=0.05, presence=1.0)


def test_blink_logic_on_a_constructed_eye_ratio_sequence() -> None:
    """No real blink recording is available: this checks the decision logic only."""
    open_eye = [0.30, 0.31, 0.30, 0.29, 0.30]
    blink = [*open_eye, 0.12, 0.10, 0.13, 0.29, 0.30]
    assert detect_blink(np.array(blink), 0.7, 0.85)[0]
    assert not detect_blink(np.array(open_eye), 0.7, 0.85)[0]
    # Eyes closing and staying closed is not a blink.
    assert not detect_blink(np.array([*open_eye, 0.1, 0.1, 0.1]), 0.7, 0.85)[0]
    tracker = LivenessTracker(LivenessConfig(mode="blink_and_motion", window_s=5))
    for i, ear in enumerate(blink):
        tracker.add(i * 0.1, _features(ear))
    verdict = tracker.verdict()
    assert verdict.blink and not verdict.motion and not verdict.passed
    # Samples older than the window are forgotten.
    assert tracker.verdict(now=100.0).samples == 0
