"""3D consistency of the face mesh across frames: a head shows parallax, a print does not.

A printed photo moves as one sheet.  Flat, the frame-to-frame motion of its
points is a homography; bent round a cylinder it is still a smooth warp of
the sheet.  Both are captured closely by a quadratic map of image
coordinates fitted to the points around the nose: the face contour, the eyes,
the brows and the mouth.  A real head is not a smooth sheet: the nose stands
2-3 cm in front of that surface, so when the head turns or nods the nose tip
moves away from where the smooth map puts it.  ``nose_parallax`` is that
miss, over the face width.

The score needs real rotation to show anything (a head held still has no
parallax either), so motion counts as liveness evidence only with it, and a
blink counts only while the head (or sheet) pose stays steady; see
:mod:`vision.liveness`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip
EYES_BROWS_MOUTH = (
    33, 133, 159, 145, 362, 263, 386, 374, 70, 105, 107, 300, 334, 336, 61, 291, 13, 14, 17, 0,
)  # fmt: skip
NOSE = (1, 4, 5, 19, 94, 2)
ANCHORS = FACE_OVAL + EYES_BROWS_MOUTH
SHAPE_POINTS = ANCHORS + NOSE  # the subset carried from the worker, in this order
_N_ANCHORS = len(ANCHORS)
CHEEKS = (FACE_OVAL.index(234), FACE_OVAL.index(454))


def shape_of(points: FloatArray) -> FloatArray:
    """The (len(SHAPE_POINTS), 2) subset of (468, 2+) mesh points this module needs."""
    return np.ascontiguousarray(points[list(SHAPE_POINTS), :2], dtype=np.float32)


def _design(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    x, y = xy[:, 0], xy[:, 1]
    return np.column_stack([np.ones_like(x), x, y, x * x, x * y, y * y])


def nose_parallax(reference: FloatArray, current: FloatArray) -> float:
    """How far the nose tip misses a smooth sheet warp from ``reference`` to
    ``current`` (both :func:`shape_of` arrays), over the face width."""
    ref = reference.astype(np.float64)
    cur = current.astype(np.float64)
    left, right = ref[CHEEKS[0]], ref[CHEEKS[1]]
    width = float(np.hypot(*(right - left)))
    if width < 1e-6:
        return 0.0
    # Normalise to the face so the quadratic terms are well conditioned.
    centre = ref[:_N_ANCHORS].mean(axis=0)
    src = (ref - centre) / width
    dst = (cur - centre) / width
    a = _design(src[:_N_ANCHORS])
    coef, *_ = np.linalg.lstsq(a, dst[:_N_ANCHORS], rcond=None)
    predicted = _design(src[_N_ANCHORS:]) @ coef
    return float(np.linalg.norm(predicted - dst[_N_ANCHORS:], axis=1).mean())
