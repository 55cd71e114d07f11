"""The per-frame pipeline, in-process: detect, then landmarks + descriptor + mesh.

Blocking and CPU-bound: run it in :mod:`vision.worker`'s process, not on the loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from vision.detect import Detection, FaceDetector
from vision.embed import FaceEmbedder, FaceEmbedding
from vision.errors import ModelUnavailable
from vision.mesh import FaceMesh, MeshFeatures


@dataclass(frozen=True)
class FaceAnalysis:
    detection: Detection
    embedding: FaceEmbedding | None
    mesh: MeshFeatures | None


@dataclass(frozen=True)
class FrameResult:
    """``faces`` largest first; only the first ``max_faces`` carry embedding and mesh.

    ``latency_ms`` has keys detect, landmarks, embed, mesh, total.
    """

    faces: list[FaceAnalysis]
    latency_ms: dict[str, float] = field(default_factory=dict)
    seq: int = -1
    ts: float = 0.0


class FaceAnalyzer:
    """Loads every model once; ``analyze`` one BGR frame at a time."""

    def __init__(self, max_faces: int = 1, num_jitters: int = 0, mesh: bool = True) -> None:
        self.detector = FaceDetector()
        self.embedder = FaceEmbedder(num_jitters)
        self.mesh: FaceMesh | None = None
        if mesh:
            try:
                self.mesh = FaceMesh()
            except ModelUnavailable:
                self.mesh = None  # liveness then never passes: features stay None
        self.max_faces = max_faces

    def analyze(
        self, image_bgr: npt.NDArray[np.uint8], seq: int = -1, ts: float = 0.0
    ) -> FrameResult:
        t0 = time.perf_counter()
        detections = sorted(self.detector.detect(image_bgr), key=lambda d: -d.width * d.height)
        t1 = time.perf_counter()
        embeddings: list[FaceEmbedding] = []
        landmark_s = 0.0
        if detections:
            rgb: npt.NDArray[np.uint8] = np.ascontiguousarray(image_bgr[:, :, ::-1])
            for det in detections[: self.max_faces]:
                ta = time.perf_counter()
                shape = self.embedder.landmarks(rgb, det)
                landmark_s += time.perf_counter() - ta
                points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
                embeddings.append(FaceEmbedding(self.embedder.describe(rgb, shape), points))
        t2 = time.perf_counter()
        meshes: list[MeshFeatures | None] = []
        for det in detections[: self.max_faces]:
            meshes.append(self.mesh.features(image_bgr, det) if self.mesh else None)
        t3 = time.perf_counter()
        faces = [
            FaceAnalysis(
                det,
                embeddings[i] if i < len(embeddings) else None,
                meshes[i] if i < len(meshes) else None,
            )
            for i, det in enumerate(detections)
        ]
        latency = {
            "detect": (t1 - t0) * 1e3,
            "landmarks": landmark_s * 1e3,
            "embed": (t2 - t1 - landmark_s) * 1e3,
            "mesh": (t3 - t2) * 1e3,
            "total": (t3 - t0) * 1e3,
        }
        return FrameResult(faces, latency, seq, ts)
