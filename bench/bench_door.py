"""Door latency, measured through the real worker process as the daemon uses it.

1. The 1:N search for 10,000 members x 3 templates: in the worker process
   (BLAS pinned to one thread), p50/p95 as the worker times it; the same
   search in this process with default BLAS threads is the baseline.  Then
   the search layout alone, in this process pinned to one thread: slot-major
   (vision/matcher.py) against the per-member runs + reduceat it replaced.
2. Frame -> decision through the worker (agreement only, liveness off).
3. Walk-up to a live decision at 15 fps: a blink rendered from a dev photo
   (bench/bench_vision_attacks.py) written as a clip and played by the
   door's file camera at 15 fps (latest frame wins: frames that arrive while
   the door is busy are dropped) through the same FrameSteps as the service
   (mesh worker on every frame, embedding worker beside it).  The walk-up
   time runs from the first frame's capture to the decision.  Baseline in
   the same run, turn about: the next embedding waits for the camera's next
   frame instead of starting the moment the previous one returns.

Uses ../shared/faces: enrolls barack_obama 1-3 among 9,999 random members.
Run from the repository root as a module (it imports bench.bench_vision_attacks):

    .venv/bin/python -m bench.bench_door
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

from bench.bench_vision_attacks import CACHE, FACES, blink_frames, camera_frame, write_clip
from edge.door.decision import DoorDecider
from edge.door.enroll import embeddings_from_photos
from edge.door.frames import FrameSteps
from vision.camera import OpenCVSource
from vision.liveness import LivenessConfig
from vision.matcher import AgreementConfig, MatchConfig, Matcher
from vision.pipeline import FrameResult
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
        await search_in_worker(worker, image, ids, templates)
        await frame_to_decision(worker, image)
        await blink_walkups(worker)
    finally:
        await worker.stop()


async def search_in_worker(
    worker: VisionWorker, image: np.ndarray, local_ids: list[str], local_templates: np.ndarray
) -> None:
    local = Matcher(local_ids, local_templates)
    in_worker: list[float] = []
    for _ in range(100):
        result = await worker.analyze(image)
        assert result.faces[0].match is not None and result.faces[0].match.member_id == "obama"
        in_worker.append(result.latency_ms["match"])
    probe = (await worker.analyze(image)).faces[0].embedding
    assert probe is not None
    baseline: list[float] = []
    for _ in range(100):
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
    layouts(list(local_ids), local_templates, probe.vector)


def per_member_runs(ids: list[str], templates: np.ndarray) -> Callable[[np.ndarray], object]:
    """The previous search layout, for comparison: templates grouped per member,
    the per-member minimum by np.minimum.reduceat, square roots for all."""
    order = np.argsort(np.asarray(ids), kind="stable")
    t = np.ascontiguousarray(templates[order])
    norms = np.einsum("ij,ij->i", t, t)
    _, starts = np.unique(np.asarray(ids)[order], return_index=True)

    def search(p: np.ndarray) -> object:
        sq = norms + float(p @ p) - 2.0 * (t @ p)
        d = np.sqrt(np.maximum(np.minimum.reduceat(sq, starts), 0.0))
        return np.argpartition(d, 1)[:2]

    return search


def layouts(ids: list[str], templates: np.ndarray, probe: np.ndarray) -> None:
    """Both layouts in this process with BLAS pinned to one thread, turn about;
    for the new one also its CPU time, which excludes waiting for a core."""
    new, old = Matcher(ids, templates), per_member_runs(ids, templates)
    times: dict[str, list[float]] = {"slots": [], "runs": [], "cpu": []}
    with threadpool_limits(1):
        for _ in range(200):
            for name, search in (("slots", new.match), ("runs", old)):
                t0, c0 = time.perf_counter(), time.thread_time()
                search(probe)
                times[name].append((time.perf_counter() - t0) * 1e3)
                if name == "slots":
                    times["cpu"].append((time.thread_time() - c0) * 1e3)
    a, b, cpu = times["slots"], times["runs"], times["cpu"]
    print(
        f"search layout (this process, 1 BLAS thread): slot-major p50 {statistics.median(a):.2f}"
        f" ms, p95 {p95(a):.2f} ms (CPU time p50 {statistics.median(cpu):.2f}, p95 "
        f"{p95(cpu):.2f} ms); per-member runs + reduceat (before) p50 "
        f"{statistics.median(b):.2f} ms, p95 {p95(b):.2f} ms "
        f"(ratio p50 {statistics.median(a) / statistics.median(b):.2f})"
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
        walkups: dict[str, list[float]] = {"chained": [], "unchained": []}
        for run in range(24):
            # The blink starts 1-4 frames after the face appears; both ways of
            # scheduling embeddings take turns, so they share the machine's load.
            frames = blink_frames(photo, points, before=1 + (run // 2) % 4, after=60)
            clip = write_clip(frames, CACHE / f"bench-blink-{run}.avi", FPS)
            kind = "chained" if run % 2 == 0 else "unchained"
            took = await walkup(clip, FrameSteps if kind == "chained" else UnchainedSteps,
                                worker, mesh_worker)  # fmt: skip
            if took is None:
                print(f"  run {run} ({kind}): no decision")
            else:
                walkups[kind].append(took)
        new, old = walkups["chained"], walkups["unchained"]
        print(
            f"walk-up to live decision (blink at {FPS:g} fps, default liveness): p50 "
            f"{statistics.median(new):.0f} ms, p95 {p95(new):.0f} ms over {len(new)} walk-ups; "
            f"baseline (next embedding waits for the next frame) p50 "
            f"{statistics.median(old):.0f} ms, p95 {p95(old):.0f} ms over {len(old)} "
            f"(ratio p95 {p95(new) / p95(old):.2f})"
        )
    finally:
        await mesh_worker.stop()


class UnchainedSteps(FrameSteps):
    """The baseline: an embedding's match is taken, but the next embedding
    waits for the camera's next frame (as before embeddings were chained)."""

    def _embedded(self, task: asyncio.Task[FrameResult]) -> None:
        latest, self._latest = self._latest, None  # nothing to chain onto
        try:
            super()._embedded(task)
        finally:
            self._latest = self._latest or latest


async def walkup(
    clip: Path, steps_type: type[FrameSteps], worker: VisionWorker, mesh_worker: VisionWorker
) -> float | None:
    """First frame's capture to the live decision, in ms; None if none came."""
    decider = DoorDecider(None, AgreementConfig(), LivenessConfig(), 6, 8)
    steps = steps_type(decider, worker, mesh_worker)
    source = OpenCVSource(str(clip), fps=FPS)
    await source.start()
    first: float | None = None
    try:
        async for frame in source.frames():
            first = frame.ts if first is None else first
            decided = await steps.step(frame)
            if decided is not None:
                assert decided[0].passed, decided
                return (time.time() - first) * 1e3
        return None
    finally:
        await steps.close()
        await source.stop()


if __name__ == "__main__":
    asyncio.run(main())
