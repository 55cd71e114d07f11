"""The per-frame pipeline, in-process: detect, face mesh, then (when asked) landmarks,
descriptor and the 1:N search.

Detection and the mesh cost a few milliseconds and run on every frame, so
liveness sees the camera's full rate; the descriptor costs ~60 ms and runs
only on the frames the caller asks for (see :meth:`DoorDecider.wants_embedding`)
and only when the face is frontal enough to give a good one.  The 1:N search
runs here too, next to the descriptor, so it never touches the daemon's loop.

Blocking and CPU-bound: run it in :mod:`vision.worker`'s process, not on the loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from vision.detect import Detection, FaceDetector
from vision.embed import FaceEmbedder, FaceEmbedding
from vision.errors import ModelUnavailable
from vision.eyes import EyeModel
from vision.matcher import Matcher, MatchResult
from vision.mesh import FaceMesh, MeshFeatures, face_shape, mesh_features

# A face turned or nodded further than this (mesh yaw/pitch ratios) gives a poor
# descriptor: the frame still feeds liveness but is not embedded.  A frontal
# face reads ~0; the dev photos, all usable for enrollment, read up to 0.22.
FRONTAL_MAX_YAW = 0.35
FRONTAL_MAX_PITCH = 0.35


@dataclass(frozen=True)
class FaceAnalysis:
    detection: Detection
    embedding: FaceEmbedding | None
    mesh: MeshFeatures | None
    match: MatchResult | None = None  # 1:N result for the embedding, when a gallery is loaded
    points: npt.NDArray[np.float32] | None = None  # (468, 3) mesh points, image pixels


@dataclass(frozen=True)
class FrameResult:
    """``faces`` largest first; only the first ``max_faces`` carry a mesh, and only
    the first may carry an embedding (when asked for and frontal).

    ``latency_ms`` has keys detect, mesh, landmarks, embed, match, total.
    """

    faces: list[FaceAnalysis]
    latency_ms: dict[str, float] = field(default_factory=dict)
    seq: int = -1
    ts: float = 0.0


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union if union > 0 else 0.0


def frontal(mesh: MeshFeatures | None) -> bool:
    """Frontal enough for a descriptor; without a mesh there is nothing to judge by."""
    if mesh is None:
        return True
    return abs(mesh.yaw) <= FRONTAL_MAX_YAW and abs(mesh.pitch) <= FRONTAL_MAX_PITCH


class FaceAnalyzer:
    """Loads every model once; ``analyze`` one BGR frame at a time.

    ``matcher``, when set, is searched with every embedding computed.
    """

    def __init__(
        self, max_faces: int = 1, num_jitters: int = 0, mesh: bool = True, descriptor: bool = True
    ) -> None:
        self.detector = FaceDetector()
        self.embedder = FaceEmbedder(num_jitters) if descriptor else None
        self.mesh: FaceMesh | None = None
        self.eyes: EyeModel | None = None
        if mesh:
            try:
                self.mesh = FaceMesh()
            except ModelUnavailable:
                self.mesh = None  # liveness then never passes: features stay None
            try:
                self.eyes = EyeModel()
            except ModelUnavailable:
                self.eyes = None  # blinks then judged on the mesh's eye ratio
        self.max_faces = max_faces
        self.matcher: Matcher | None = None

    def analyze(
        self,
        image_bgr: npt.NDArray[np.uint8],
        seq: int = -1,
        ts: float = 0.0,
        embed: bool = True,
        require_frontal: bool = False,
        near: tuple[float, float, float, float] | None = None,
    ) -> FrameResult:
        """``embed``: describe the largest face, or with ``near`` the face whose box
        overlaps that box most (it comes first in ``faces``); ``require_frontal``:
        only if it is frontal."""
        t0 = time.perf_counter()
        detections = sorted(self.detector.detect(image_bgr), key=lambda d: -d.width * d.height)
        if near is not None and detections:
            target = max(detections, key=lambda d: _iou(d.box, near))
            detections.remove(target)
            detections.insert(0, target)
        t1 = time.perf_counter()
        meshes: list[tuple[MeshFeatures | None, npt.NDArray[np.float32] | None]] = []
        for det in detections[: self.max_faces]:
            if self.mesh is None:
                meshes.append((None, None))
                continue
            points, presence = self.mesh.run(image_bgr, det)
            features = replace(mesh_features(points, presence), shape=face_shape(det.keypoints))
            if self.eyes is not None:
                features = replace(features, openness=self.eyes.openness(image_bgr, points))
            meshes.append((features, points))
        t2 = time.perf_counter()
        embedding: FaceEmbedding | None = None
        match: MatchResult | None = None
        landmark_s = embed_s = match_s = 0.0
        first_mesh = meshes[0][0] if meshes else None
        embedder = self.embedder
        if embedder and detections and embed and (not require_frontal or frontal(first_mesh)):
            rgb: npt.NDArray[np.uint8] = np.ascontiguousarray(image_bgr[:, :, ::-1])
            ta = time.perf_counter()
            shape = embedder.landmarks(rgb, detections[0])
            tb = time.perf_counter()
            points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
            embedding = FaceEmbedding(embedder.describe(rgb, shape), points)
            tc = time.perf_counter()
            if self.matcher is not None:
                match = self.matcher.match(embedding.vector)
            landmark_s, embed_s, match_s = tb - ta, tc - tb, time.perf_counter() - tc
        faces = [
            FaceAnalysis(
                det,
                embedding if i == 0 else None,
                meshes[i][0] if i < len(meshes) else None,
                match if i == 0 else None,
                meshes[i][1] if i < len(meshes) else None,
            )
            for i, det in enumerate(detections)
        ]
        latency = {
            "detect": (t1 - t0) * 1e3,
            "mesh": (t2 - t1) * 1e3,
            "landmarks": landmark_s * 1e3,
            "embed": embed_s * 1e3,
            "match": match_s * 1e3,
            "total": (time.perf_counter() - t0) * 1e3,
        }
        return FrameResult(faces, latency, seq, ts)
