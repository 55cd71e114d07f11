"""Door latency, measured through the real worker process as the daemon uses it.

1. The 1:N search for 10,000 members x 3 templates: in the worker process
   (BLAS pinned to one thread), p50/p95 as the worker times it; the same
   search in this process with default BLAS threads is the baseline.
2. Frame -> decision through the worker (agreement only, liveness off).
3. Walk-up to a live decision at 15 fps: a blink rendered from a dev photo
   (bench/bench_vision_attacks.py) written as a clip and played by the
   door's file camera at 15 fps (latest frame wins: frames that arrive while
   the door is busy are dropped) through the same FrameSteps as the service
   (mesh worker on every frame, embedding worker beside it).  The walk-up
   time runs from the first frame's capture to the decision.

Uses ../shared/faces: enrolls barack_obama 1-3 among 9,999 random members.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import cv2
import numpy as np

from bench.bench_vision_attacks import CACHE, FACES, blink_frames, camera_frame, write_clip
from edge.door.decision import DoorDecider
from edge.door.enroll import embeddings_from_photos
from edge.door.frames import FrameSteps
from vision.camera import OpenCVSource
from vision.liveness import LivenessConfig
from vision.matcher import AgreementConfig, MatchConfig, Matcher
from vision.quality import QualityConfig
from vision.worker import VisionWorker

MEMBERS, PER_MEMBER = 10_000, 3
FPS = 15.0


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18]


def gallery(real: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The real member's templates plus random unit-ish descriptors for the rest."""
    rng = np.random.default_rng(1)
    others = rng.normal(0, 0.09, ((MEMBERS - 1) * PER_MEMBER, 128)).astype(np.float32)
    ids = ["obama"] * len(real) + [f"m{i // PER_MEMBER:05d}" for i in range(len(others))]
    return ids, np.vstack([real, others]).astype(np.float32)


async def main() -> None:
    obama = sorted((FACES / "dev" / "barack_obama").iterdir())
    worker = VisionWorker()
    await worker.start()
    try:
        vecs = await embeddings_from_photos(
            worker, [(p.name, p.read_bytes()) for p in obama[:3]], QualityConfig(), 1, 5
        )
        ids, templates = gallery(vecs)
        t0 = time.perf_counter()
        await worker.set_gallery(ids, templates, MatchConfig())
        print(
            f"gallery of {MEMBERS:,} x {PER_MEMBER} loaded into the worker in "
            f"{(time.perf_counter() - t0) * 1e3:.0f} ms"
        )
        image = np.asarray(cv2.imread(str(obama[3])), np.uint8)
        await search_in_worker(worker, image, Matcher(ids, templates))
        await frame_to_decision(worker, image)
        await blink_walkups(worker)
    finally:
        await worker.stop()


async def search_in_worker(worker: VisionWorker, image: np.ndarray, local: Matcher) -> None:
    in_worker: list[float] = []
    for _ in range(40):
        result = await worker.analyze(image)
        assert result.faces[0].match is not None and result.faces[0].match.member_id == "obama"
        in_worker.append(result.latency_ms["match"])
    probe = (await worker.analyze(image)).faces[0].embedding
    assert probe is not None
    baseline: list[float] = []
    for _ in range(40):
        t0 = time.perf_counter()
        local.match(probe.vector)
        baseline.append((time.perf_counter() - t0) * 1e3)
    print(
        f"1:N search {MEMBERS:,} x {PER_MEMBER}: in the worker p50 "
        f"{statistics.median(in_worker):.2f} ms, p95 {p95(in_worker):.2f} ms; "
        f"baseline in this process (default BLAS threads) p50 "
        f"{statistics.median(baseline):.2f} ms, p95 {p95(baseline):.2f} ms "
        f"(ratio p95 {p95(in_worker) / p95(baseline):.2f})"
    )


async def frame_to_decision(worker: VisionWorker, image: np.ndarray) -> None:
    per_frame: list[float] = []
    for _ in range(10):
        decider = DoorDecider(None, AgreementConfig(), LivenessConfig(mode="off"), 6, 8)
        while True:
            t0 = time.perf_counter()
            result = await worker.analyze(image, embed=decider.wants_embedding())
            attempt = decider.feed(result, time.time())
            per_frame.append((time.perf_counter() - t0) * 1e3)
            if attempt is not None:
                assert attempt.member_id == "obama"
                break
    print(
        f"frame->decision via worker (embedding frames): p50 {statistics.median(per_frame):.1f}"
        f" ms, p95 {p95(per_frame):.1f} ms over {len(per_frame)} frames"
    )


async def blink_walkups(worker: VisionWorker) -> None:
    """Walk-up to a live decision (default liveness) on a rendered blink at 15 fps,
    played by the door's file camera through FrameSteps, as the service runs it."""
    photo = camera_frame(
        np.asarray(cv2.imread(str(FACES / "dev" / "barack_obama" / "4.jpg")), np.uint8)
    )
    mesh_worker = VisionWorker(descriptor=False)
    await mesh_worker.start()
    try:
        points = (await mesh_worker.analyze(photo, embed=False)).faces[0].points
        assert points is not None
        walkups: list[float] = []
        for run in range(12):
            # The blink starts 1-4 frames after the face appears.
            frames = blink_frames(photo, points, before=1 + run % 4, after=60)
            clip = write_clip(frames, CACHE / f"bench-blink-{run}.avi", FPS)
            decider = DoorDecider(None, AgreementConfig(), LivenessConfig(), 6, 8)
            steps = FrameSteps(decider, worker, mesh_worker)
            source = OpenCVSource(str(clip), fps=FPS)
            await source.start()
            first: float | None = None
            try:
                async for frame in source.frames():
                    first = frame.ts if first is None else first
                    decided = await steps.step(frame)
                    if decided is not None:
                        assert decided[0].passed, decided
                        walkups.append((time.time() - first) * 1e3)
                        break
                else:
                    print(f"  run {run}: no decision")
            finally:
                await steps.close()
                await source.stop()
        print(
            f"walk-up to live decision (blink at {FPS:g} fps, default liveness): p50 "
            f"{statistics.median(walkups):.0f} ms, p95 {p95(walkups):.0f} ms over "
            f"{len(walkups)} walk-ups"
        )
    finally:
        await mesh_worker.stop()


if __name__ == "__main__":
    asyncio.run(main())
