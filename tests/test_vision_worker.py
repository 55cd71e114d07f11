"""The inference worker process: real models in a spawned child; crashes injected by signals."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from vision.camera import Frame
from vision.errors import WorkerCrashed, WorkerStopped, WorkerTimeout
from vision.matcher import MatchConfig
from vision.worker import VisionWorker, WorkerConfig


def _photo(shared_faces: Path) -> Frame:
    image = cv2.imread(str(shared_faces / "dev" / "barack_obama" / "1.jpg"))
    assert image is not None
    return Frame(np.asarray(image, np.uint8), 1.0, 7)


@pytest.mark.slow
async def test_worker_analyzes_survives_crash_and_hang(shared_faces: Path) -> None:
    worker = VisionWorker(WorkerConfig(call_timeout_s=3.0))
    frame = _photo(shared_faces)
    await worker.start()
    try:
        result = await worker.analyze(frame)
        assert result.seq == 7 and len(result.faces) == 1
        face = result.faces[0]
        assert face.embedding is not None and face.embedding.vector.shape == (128,)
        assert face.mesh is not None and face.mesh.presence > 0.5
        assert set(result.latency_ms) == {"detect", "landmarks", "embed", "match", "mesh", "total"}
        assert face.match is None  # no gallery loaded yet

        # The 1:N search runs in the child, against the gallery it was given.
        probe = face.embedding.vector
        others = np.random.default_rng(3).normal(0, 0.3, (30, 128)).astype(np.float32)
        ids = ["obama"] + [f"m{i // 3}" for i in range(30)]
        assert await worker.set_gallery(ids, np.vstack([probe, others]), MatchConfig()) == 11
        matched = (await worker.analyze(frame)).faces[0].match
        assert matched is not None and matched.member_id == "obama"
        # Mesh only (a frame not worth embedding): no descriptor, no search.
        cheap = await worker.analyze(frame, embed=False)
        assert cheap.faces[0].embedding is None and cheap.faces[0].match is None
        assert cheap.faces[0].mesh is not None and cheap.latency_ms["embed"] == 0.0

        # Crash with a call in flight: freeze the child so it cannot answer, then kill it.
        first_pid = worker.pid
        assert first_pid is not None
        os.kill(first_pid, signal.SIGSTOP)
        sending = threading.Event()
        send = worker._send_with_deadline

        def send_seen(*args: Any) -> Any:
            sending.set()
            return send(*args)

        worker._send_with_deadline = send_seen  # type: ignore[method-assign]
        in_flight = asyncio.create_task(worker.analyze(frame), name="in-flight-analyze")
        assert await asyncio.to_thread(sending.wait, 30), "the frame was never sent"
        assert not in_flight.done()
        os.kill(first_pid, signal.SIGKILL)
        with pytest.raises(WorkerCrashed):
            await in_flight
        result = await worker.analyze(frame)
        assert len(result.faces) == 1
        assert worker.pid not in (None, first_pid) and worker.restarts == 1
        # The restarted child got the gallery back.
        restarted = result.faces[0].match
        assert restarted is not None and restarted.member_id == "obama"
        # A new gallery without the member: the child no longer names them.
        assert await worker.set_gallery(ids[1:], others, MatchConfig()) == 10
        gone = (await worker.analyze(frame)).faces[0].match
        assert gone is not None and gone.member_id is None

        # A hung child (never answers) fails the call with WorkerTimeout and is replaced.
        hung_pid = worker.pid
        assert hung_pid is not None
        os.kill(hung_pid, signal.SIGSTOP)
        with pytest.raises(WorkerTimeout):
            await worker.analyze(frame)
        result = await worker.analyze(frame)
        assert len(result.faces) == 1 and worker.pid != hung_pid
    finally:
        await worker.stop()
        await worker.stop()  # idempotent
    with pytest.raises(WorkerStopped):
        await worker.analyze(frame)


async def test_worker_reports_bad_frames_without_dying(shared_faces: Path) -> None:
    worker = VisionWorker(WorkerConfig(mesh=False))
    await worker.start()
    try:
        pid = worker.pid
        result = await worker.analyze(np.zeros((48, 64, 3), np.uint8))
        assert result.faces == []
        assert worker.pid == pid and await asyncio.to_thread(worker.rss_bytes) is not None
    finally:
        await worker.stop()
    assert worker.pid is None
