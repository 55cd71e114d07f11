"""Door latency: frame → decision through the real worker process (p50/p95),
and liveness decision time from walk-up (first frame of a face to the verdict).

Uses ../shared/faces: enrolls barack_obama 1-3, replays photo 4.  Liveness
evidence on a still photo never passes, so walk-up time is measured with
liveness 'off' (agreement only) and reported as the floor of a real walk-up.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from edge.door.decision import DoorDecider
from edge.door.enroll import embeddings_from_photos
from vision.liveness import LivenessConfig
from vision.matcher import AgreementConfig, Matcher
from vision.pipeline import FrameResult
from vision.quality import QualityConfig
from vision.worker import VisionWorker

FACES = Path(__file__).resolve().parent.parent.parent / "shared" / "faces"


async def main() -> None:
    obama = sorted((FACES / "dev" / "barack_obama").iterdir())
    worker = VisionWorker()
    await worker.start()
    try:
        vecs = await embeddings_from_photos(
            worker, [(p.name, p.read_bytes()) for p in obama[:3]], QualityConfig(), 1, 5
        )
        matcher = Matcher(["obama"] * len(vecs), vecs)
        image = np.asarray(cv2.imread(str(obama[3])), np.uint8)
        per_frame: list[float] = []
        walkups: list[float] = []
        for _ in range(10):
            decider = DoorDecider(matcher, AgreementConfig(), LivenessConfig(mode="off"), 6, 8)
            start = time.perf_counter()
            while True:
                t0 = time.perf_counter()
                result: FrameResult = await worker.analyze(image)
                attempt = decider.feed(result, time.time())
                per_frame.append((time.perf_counter() - t0) * 1e3)
                if attempt is not None:
                    walkups.append((time.perf_counter() - start) * 1e3)
                    break
        q = statistics.quantiles(per_frame, n=20)
        print(
            f"frame->decision via worker: p50 {statistics.median(per_frame):.1f} ms, "
            f"p95 {q[18]:.1f} ms over {len(per_frame)} frames"
        )
        print(
            f"walk-up to decision (3 agreeing frames, liveness off): "
            f"p50 {statistics.median(walkups):.1f} ms over {len(walkups)} walk-ups"
        )
    finally:
        await worker.stop()


if __name__ == "__main__":
    asyncio.run(main())
