"""Enrollment photos: decode, analyse in the worker, gate on quality.

Every photo is checked and every problem reported (the member can retake
the bad ones); nothing is enrolled unless enough photos pass.  The photos
themselves are never written anywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from edge.door.errors import EnrollmentRejected
from vision.errors import WorkerError
from vision.quality import QualityConfig, check_quality
from vision.worker import VisionWorker

MAX_PHOTO_BYTES = 8 * 1024 * 1024


def decode_photo(data: bytes) -> npt.NDArray[np.uint8] | None:
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    return None if image is None else np.asarray(image, dtype=np.uint8)


async def embeddings_from_photos(
    worker: VisionWorker,
    photos: Sequence[tuple[str, bytes]],
    quality: QualityConfig,
    min_photos: int,
    max_photos: int,
) -> npt.NDArray[np.float32]:
    """(n, 128) embeddings of the photos, or EnrollmentRejected naming each problem."""
    if not min_photos <= len(photos) <= max_photos:
        raise EnrollmentRejected(
            f"photos: send {min_photos} to {max_photos} photos, got {len(photos)}", {}
        )
    problems: dict[str, list[str]] = {}
    vectors: list[npt.NDArray[np.float32]] = []
    for name, data in photos:
        if len(data) > MAX_PHOTO_BYTES:
            problems[name] = [f"larger than {MAX_PHOTO_BYTES // (1024 * 1024)} MiB"]
            continue
        image = await asyncio.to_thread(decode_photo, data)
        if image is None:
            problems[name] = ["not a JPEG/PNG image"]
            continue
        try:
            result = await worker.analyze(image)
        except WorkerError as exc:
            problems[name] = [f"vision worker failed: {exc}"]
            continue
        face = result.faces[0] if result.faces else None
        landmarks = face.embedding.landmarks if face and face.embedding else None
        report = await asyncio.to_thread(
            check_quality, image, [f.detection for f in result.faces], landmarks, quality
        )
        if not report.ok or face is None or face.embedding is None:
            problems[name] = [i.message for i in report.issues] or ["no face descriptor"]
            continue
        vectors.append(face.embedding.vector)
    if problems:
        raise EnrollmentRejected(
            f"{len(problems)} of {len(photos)} photos failed the quality gate", problems
        )
    return np.stack(vectors).astype(np.float32)
