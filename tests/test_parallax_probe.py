"""The 3D-consistency probe of the PAD bench (bench/parallax_probe.py), on exact
geometry: the warp absorbs a sheet, flat or bent, and a head's nose misses it.
(Measured through optical flow on footage the two overlap: docs/door.md.)"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from bench.parallax_probe import nose_parallax

FOCAL_PX, DISTANCE_CM = 600.0, 50.0


def _face_points(nose_cm: float, bend: str) -> tuple[npt.NDArray[np.float64], int]:
    """3D points (cm) of a face-sized surface: a grid on a plane, a cylinder
    (a bent print) or an ellipsoid-like quadric (a head), plus three nose points
    ``nose_cm`` in front of that surface.  Returns (points, number of surface points)."""
    xs, ys = np.meshgrid(np.linspace(-6, 6, 5), np.linspace(-7, 7, 5))
    x, y = xs.ravel(), ys.ravel()
    depth = {"plane": 0 * x, "cylinder": x**2 / 18, "head": x**2 / 16 + y**2 / 30}[bend]
    surface = np.column_stack([x, y, depth])
    nx = np.array([0.0, 0.0, 0.0])
    ny = np.array([0.5, 1.5, 2.5])
    nz = {"plane": 0 * nx, "cylinder": nx**2 / 18, "head": nx**2 / 16 + ny**2 / 30}[bend]
    nose = np.column_stack([nx, ny, nz - nose_cm])  # toward the camera is -z
    return np.vstack([surface, nose]), len(surface)


def _project(points: npt.NDArray[np.float64], yaw_deg: float) -> npt.NDArray[np.float64]:
    a = math.radians(yaw_deg)
    rot = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    cam = points @ rot.T + np.array([0, 0, DISTANCE_CM])
    return FOCAL_PX * cam[:, :2] / cam[:, 2:]


@pytest.mark.parametrize(
    ("bend", "nose_cm", "yaw_deg"),
    [("plane", 0.0, 45.0), ("cylinder", 0.0, 45.0), ("head", 0.0, 45.0), ("head", 3.0, 45.0)],
)
def test_only_a_nose_off_the_surface_shows_parallax(
    bend: str, nose_cm: float, yaw_deg: float
) -> None:
    """A print, flat or bent, turned 45 degrees (in perspective, at 50 cm): its nose
    moves with the warp of the rest; a head's nose tip, 3 cm out of its surface,
    misses it by about a quarter of the eye-corner distance."""
    points, n_surface = _face_points(nose_cm, bend)
    start, now = _project(points, 0.0), _project(points, yaw_deg)
    surface = np.arange(len(points)) < n_surface
    scale = 9.0 * FOCAL_PX / DISTANCE_CM  # outer eye corners ~9 cm apart
    miss, fit = nose_parallax(start, now, surface, ~surface, scale)
    assert fit < 0.02
    if nose_cm:
        assert 0.2 < miss < 0.3, miss
    else:
        assert miss < 0.01, miss
