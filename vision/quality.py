"""Quality gate for enrollment: every failed check is reported, not just the first.

Pose is estimated from landmarks in an eye-aligned frame, so it does not depend
on where the face is in the image or how big it is:

- roll: angle of the line through the two eye centres;
- yaw: sideways offset of the nose from the eye midpoint, over the eye distance.
  With the nose tip about half an eye distance in front of the eyes, that ratio
  is ~0.5*tan(yaw), hence ``yaw = atan(2 * ratio)``; a coarse estimate, good
  enough to refuse turned heads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from vision.config import QualityConfig as QualityConfig  # re-exported
from vision.detect import Detection

FloatArray = npt.NDArray[np.float32]
# Sharpness is measured on the face resized to this size, so it does not grow with resolution.
SHARPNESS_SIZE = 128


@dataclass(frozen=True)
class QualityIssue:
    code: str  # no_face, multiple_faces, face_too_small, face_cut_off, blurry, yaw, roll
    message: str


@dataclass(frozen=True)
class QualityReport:
    issues: list[QualityIssue] = field(default_factory=list)
    sharpness: float | None = None
    yaw_deg: float | None = None
    roll_deg: float | None = None

    @property
    def ok(self) -> bool:
        return not self.issues

    @property
    def codes(self) -> list[str]:
        return [i.code for i in self.issues]


def eye_nose_from_landmarks(points: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(eye, eye, nose) from dlib 5-point (corners 0-1, 2-3, nose base 4) or BlazeFace
    keypoints (eye 0, eye 1, nose tip 2)."""
    if len(points) == 5:
        return points[0:2].mean(axis=0), points[2:4].mean(axis=0), points[4]
    if len(points) >= 3:
        return points[0], points[1], points[2]
    raise ValueError(f"landmarks: need 5 (dlib) or 6 (BlazeFace) points, got {len(points)}")


def estimate_pose(points: FloatArray) -> tuple[float, float]:
    """(yaw_deg, roll_deg) from eye and nose landmarks; signs are not meaningful."""
    eye_a, eye_b, nose = eye_nose_from_landmarks(points)
    left, right = (eye_a, eye_b) if eye_a[0] <= eye_b[0] else (eye_b, eye_a)
    axis = right - left
    eye_dist = float(np.hypot(*axis))
    if eye_dist < 1e-6:
        return 90.0, 0.0
    roll = math.degrees(math.atan2(float(axis[1]), float(axis[0])))
    unit = axis / eye_dist
    offset = float(np.dot(nose - (left + right) / 2, unit)) / eye_dist
    return math.degrees(math.atan(2 * offset)), roll


def sharpness(image_bgr: npt.NDArray[np.uint8], box: Sequence[float]) -> float:
    x1, y1, x2, y2 = (round(v) for v in box)
    crop = image_bgr[max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)]
    if crop.size == 0:
        return 0.0
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    grey = cv2.resize(grey, (SHARPNESS_SIZE, SHARPNESS_SIZE), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def check_quality(
    image_bgr: npt.NDArray[np.uint8],
    detections: Sequence[Detection],
    landmarks: FloatArray | None = None,
    config: QualityConfig | None = None,
) -> QualityReport:
    """Gate one enrollment photo.  ``landmarks`` (dlib 5-point of the single face)
    refine the pose; without them BlazeFace keypoints are used, else pose is skipped."""
    cfg = config or QualityConfig()
    if not detections:
        return QualityReport([QualityIssue("no_face", "no face found")])
    issues: list[QualityIssue] = []
    if len(detections) > 1:
        issues.append(
            QualityIssue("multiple_faces", f"{len(detections)} faces found, exactly one needed")
        )
    face = max(detections, key=lambda d: d.width * d.height)
    side = min(face.width, face.height)
    if side < cfg.min_face_px:
        issues.append(
            QualityIssue(
                "face_too_small", f"face is {side:.0f} px, at least {cfg.min_face_px} needed"
            )
        )
    h, w = image_bgr.shape[:2]
    x1, y1, x2, y2 = face.box
    m = cfg.edge_margin_px
    if x1 <= m or y1 <= m or x2 >= w - m or y2 >= h - m:
        issues.append(QualityIssue("face_cut_off", "face touches the image border"))
    sharp = sharpness(image_bgr, face.box)
    if sharp < cfg.min_sharpness:
        issues.append(
            QualityIssue("blurry", f"sharpness {sharp:.1f} below {cfg.min_sharpness:.1f}")
        )
    points = landmarks if landmarks is not None else face.keypoints
    yaw = roll = None
    if len(points) >= 3:
        yaw, roll = estimate_pose(points)
        if abs(yaw) > cfg.max_yaw_deg:
            issues.append(
                QualityIssue("yaw", f"head turned {abs(yaw):.0f} deg, at most {cfg.max_yaw_deg}")
            )
        if abs(roll) > cfg.max_roll_deg:
            issues.append(
                QualityIssue("roll", f"head tilted {abs(roll):.0f} deg, at most {cfg.max_roll_deg}")
            )
    return QualityReport(issues, sharp, yaw, roll)
