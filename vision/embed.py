"""Alignment (dlib 5-point landmarks) and the 128-d dlib ResNet face descriptor.

Only the 5-point model is used: dlib's 68-point model was trained on data
that excludes commercial use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from vision.detect import Detection
from vision.models import dlib_five_point_model, dlib_resnet_model

FloatArray = npt.NDArray[np.float32]
EMBEDDING_DIM = 128


@dataclass(frozen=True)
class FaceEmbedding:
    """``vector`` (128,) float32; ``landmarks`` (5, 2): two corners per eye, nose base."""

    vector: FloatArray
    landmarks: FloatArray


class FaceEmbedder:
    """Landmarks + descriptor for one face box.  Images are RGB uint8 (dlib's order)."""

    def __init__(self, num_jitters: int = 0) -> None:
        import dlib

        self._dlib: Any = dlib
        self._shape_predictor = dlib.shape_predictor(str(dlib_five_point_model()))
        self._resnet = dlib.face_recognition_model_v1(str(dlib_resnet_model()))
        self.num_jitters = num_jitters

    def landmarks(self, image_rgb: npt.NDArray[np.uint8], detection: Detection) -> Any:
        x1, y1, x2, y2 = (round(v) for v in detection.box)
        rect = self._dlib.rectangle(x1, y1, x2, y2)
        return self._shape_predictor(image_rgb, rect)

    def describe(self, image_rgb: npt.NDArray[np.uint8], shape: Any) -> FloatArray:
        vec = self._resnet.compute_face_descriptor(image_rgb, shape, self.num_jitters)
        return np.asarray(vec, dtype=np.float32)

    def embed(self, image_rgb: npt.NDArray[np.uint8], detection: Detection) -> FaceEmbedding:
        shape = self.landmarks(image_rgb, detection)
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
        return FaceEmbedding(self.describe(image_rgb, shape), points)
