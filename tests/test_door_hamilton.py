"""The Hamilton clip through the door pipeline (liveness off): the two enrolled
members are recognised in some frames and nobody else ever is."""

from __future__ import annotations

import asyncio
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge.door.enroll import embeddings_from_photos
from vision.matcher import Matcher
from vision.quality import QualityConfig
from vision.worker import VisionWorker


async def test_hamilton_clip_recognises_only_the_enrolled(shared_faces: Path) -> None:
    clip = shared_faces / "video" / "short_hamilton_clip.mp4"
    worker = VisionWorker()
    await worker.start()
    try:
        ids: list[str] = []
        vectors = []
        for member in ("lin_manuel_miranda", "alex_lacamoire"):
            photos = sorted((shared_faces / "dev" / member).iterdir())
            found = await embeddings_from_photos(
                worker, [(p.name, p.read_bytes()) for p in photos], QualityConfig(), 1, 5
            )
            ids += [member] * len(found)
            vectors.append(found)
        matcher = Matcher(ids, np.concatenate(vectors))

        def frames() -> list[npt.NDArray[np.uint8]]:
            cap = cv2.VideoCapture(str(clip))
            out: list[npt.NDArray[np.uint8]] = []
            while True:
                ok, image = cap.read()
                if not ok:
                    return out
                out.append(np.asarray(image, np.uint8))

        images = await asyncio.to_thread(frames)
        recognised: dict[str, int] = {}
        for image in images[::3]:
            result = await worker.analyze(np.asarray(image, np.uint8))
            for face in result.faces:
                if face.embedding is None:
                    continue
                match = matcher.match(face.embedding.vector)
                if match.member_id is not None:
                    recognised[match.member_id] = recognised.get(match.member_id, 0) + 1
        assert set(recognised) <= {"lin_manuel_miranda", "alex_lacamoire"}
        assert recognised, "nobody recognised in the clip"
        print("recognised frames:", recognised, "of", len(images[::3]))
    finally:
        await worker.stop()
