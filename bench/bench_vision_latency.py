"""Per-stage latency on 640x480 frames, 1:N search over 10,000 members, worker RSS.

Targets: 1:N search <= 5 ms; worker RSS with models loaded <= 250 MB.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from vision.matcher import Matcher
from vision.worker import VisionWorker, WorkerConfig

FACES = Path(__file__).resolve().parent.parent.parent / "shared" / "faces" / "dev"
ROUNDS = 30


def pct(values: list[float]) -> str:
    return f"p50 {np.percentile(values, 50):7.2f} ms  p95 {np.percentile(values, 95):7.2f} ms"


def frames() -> list[np.ndarray]:
    out = []
    for path in sorted(FACES.glob("*/*"))[:6]:
        image = cv2.imread(str(path))
        h, w = image.shape[:2]
        scale = min(640 / w, 480 / h)
        small = cv2.resize(image, (int(w * scale), int(h * scale)))
        canvas = np.zeros((480, 640, 3), np.uint8)
        canvas[: small.shape[0], : small.shape[1]] = small
        out.append(canvas)
    return out


def bench_search() -> None:
    rng = np.random.default_rng(0)
    members, per_member = 10_000, 3
    ids = np.repeat([f"m{i:05d}" for i in range(members)], per_member)
    matcher = Matcher(ids, rng.normal(0, 0.1, (members * per_member, 128)).astype(np.float32))
    probe = rng.normal(0, 0.1, 128).astype(np.float32)
    times = []
    for _ in range(200):
        t0 = time.perf_counter()
        matcher.match(probe)
        times.append((time.perf_counter() - t0) * 1e3)
    print(f"1:N search, {members} members x {per_member} templates: {pct(times)} (target <= 5 ms)")


async def bench_worker() -> None:
    worker = VisionWorker(WorkerConfig())
    await worker.start()
    try:
        stages: dict[str, list[float]] = {}
        whole: list[float] = []
        images = frames()
        for n in range(ROUNDS):
            t0 = time.perf_counter()
            result = await worker.analyze(images[n % len(images)])
            whole.append((time.perf_counter() - t0) * 1e3)
            for k, v in result.latency_ms.items():
                stages.setdefault(k, []).append(v)
        for k, v in stages.items():
            print(f"{k:>16}: {pct(v)}")
        print(f"{'frame via worker':>16}: {pct(whole)}  (includes IPC)")
        rss = worker.rss_bytes()
        print(f"worker RSS with models loaded: {(rss or 0) / 2**20:.0f} MB (target <= 250 MB)")
    finally:
        await worker.stop()


def bench_liveness() -> None:
    from vision.liveness import LivenessTracker
    from vision.mesh import MeshFeatures

    tracker = LivenessTracker()
    times = []
    for n in range(200):
        tracker.add(n / 15, MeshFeatures(0.3, 0.01 * (n % 7), 0.05, 1.0))
        t0 = time.perf_counter()
        tracker.verdict()
        times.append((time.perf_counter() - t0) * 1e3)
    print(f"liveness verdict (window of features): {pct(times)}")


def main() -> int:
    if not FACES.is_dir():
        print(f"skipped: {FACES} not found")
        return 0
    bench_search()
    bench_liveness()
    asyncio.run(bench_worker())
    return 0


if __name__ == "__main__":
    sys.exit(main())
