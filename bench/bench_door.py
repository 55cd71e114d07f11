"""Door latency: frame → decision through the real worker process (p50/p95),
and liveness decision time from walk-up (first frame of a face to the verdict).

Uses ../shared/faces: enrolls barack_obama 1-3, replays photo 4.  Liveness
evidence on a still photo never passes, so the first walk-up figure is with
liveness 'off' (agreement only, the floor of a real walk-up); the second feeds
the four real photos in different head poses as a stand-in for a turning head.
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
from vision.camera import Frame
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
        await liveness_walkup(worker, matcher, obama)
    finally:
        await worker.stop()


async def liveness_walkup(worker: VisionWorker, matcher: Matcher, photos: list[Path]) -> None:
    """Walk-up to a live decision with the default liveness (blink or motion).

    Stand-in for a turning head: the four real photos of one person in
    different poses, each held for two frames of a 5 fps camera.  Reports how
    many frames and how much camera time the evidence took, plus processing
    of the deciding frame; a real walk-up adds the person's own pace.
    """
    fps = 5.0
    poses = [np.asarray(cv2.imread(str(p)), np.uint8) for p in photos]
    results: list[tuple[int, float]] = []
    for run in range(5):
        decider = DoorDecider(matcher, AgreementConfig(), LivenessConfig(), 6, 8)
        t_start = 1_000_000.0 + run * 100
        for i in range(40):
            ts = t_start + i / fps
            t0 = time.perf_counter()
            result = await worker.analyze(Frame(poses[(i // 2) % len(poses)], ts, i))
            attempt = decider.feed(result, ts)
            processing_ms = (time.perf_counter() - t0) * 1e3
            if attempt is not None and attempt.passed:
                results.append((i + 1, (ts - t_start) * 1e3 + processing_ms))
                break
        else:
            print("  liveness never passed within 40 frames")
    if results:
        frames = [f for f, _ in results]
        times = [t for _, t in results]
        print(
            f"walk-up to live decision (default liveness, pose changes at {fps:g} fps): "
            f"{statistics.median(frames):.0f} frames, p50 {statistics.median(times):.0f} ms "
            f"over {len(results)} walk-ups"
        )


if __name__ == "__main__":
    asyncio.run(main())
