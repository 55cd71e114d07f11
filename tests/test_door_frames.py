"""Embeddings are chained: the moment one comes back and more votes are
needed, the newest frame not yet embedded goes to the embedding worker,
without waiting for the camera's next frame.  Real worker processes, a dev photo."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.door.decision import DoorDecider
from edge.door.frames import Decided, FrameSteps
from tests.edge_site import wait_until
from vision.camera import Frame
from vision.liveness import LivenessConfig
from vision.matcher import AgreementConfig, MatchConfig
from vision.worker import VisionWorker


@pytest.fixture
async def workers() -> AsyncIterator[tuple[VisionWorker, VisionWorker]]:
    embed, mesh = VisionWorker(), VisionWorker(descriptor=False)
    await asyncio.gather(embed.start(), mesh.start())
    try:
        yield embed, mesh
    finally:
        await asyncio.gather(embed.stop(), mesh.stop())


async def enrolled_door(
    embed: VisionWorker, mesh: VisionWorker, shared_faces: Path
) -> tuple[np.ndarray, FrameSteps]:
    """A dev photo of a member enrolled from it, and the door's frame steps
    (agreement on, liveness off) over the two workers."""
    photos = sorted((shared_faces / "dev" / "barack_obama").iterdir())
    image = np.asarray(cv2.imread(str(photos[0])), np.uint8)
    probe = (await embed.analyze(image)).faces[0].embedding
    assert probe is not None
    await embed.set_gallery(["obama"], probe.vector[None, :], MatchConfig())
    decider = DoorDecider(None, AgreementConfig(), LivenessConfig(mode="off"), 6.0, 8)
    return image, FrameSteps(decider, embed, mesh)


async def step_until_decided(
    steps: FrameSteps, image: np.ndarray, *, first_seq: int, within_s: float
) -> Decided:
    """Camera frames of ``image`` from ``first_seq`` on until the door decides."""
    seq = first_seq
    async with asyncio.timeout(within_s):
        while (decided := await steps.step(Frame(image, time.time(), seq))) is None:
            seq += 1
    return decided


async def test_the_next_embedding_starts_when_the_last_returns(
    workers: tuple[VisionWorker, VisionWorker], shared_faces: Path
) -> None:
    embed, mesh = workers
    image, steps = await enrolled_door(embed, mesh, shared_faces)
    sent: list[int] = []
    analyze = embed.analyze

    async def seen(frame: Frame, **kw: object) -> object:
        sent.append(frame.seq)
        return await analyze(frame, **kw)  # type: ignore[arg-type]

    embed.analyze = seen  # type: ignore[method-assign]
    try:
        now = time.time()
        assert await steps.step(Frame(image, now, 0)) is None  # embeds frame 0
        assert await steps.step(Frame(image, now + 0.07, 1)) is None  # mesh only: busy
        # No more frames: frame 1 is embedded as soon as frame 0's embedding is back.
        await wait_until(lambda: len(sent) == 2, 30)
        assert sent == [0, 1]
        # Two of three votes in; a third frame completes the agreement and decides.
        decided = await step_until_decided(steps, image, first_seq=2, within_s=30)
        assert decided[0].passed and decided[0].member_id == "obama"
        assert len(sent) == 3  # one embedding per needed vote
    finally:
        await steps.close()


async def test_an_embedding_back_before_its_frames_mesh_still_votes(
    workers: tuple[VisionWorker, VisionWorker], shared_faces: Path
) -> None:
    """The two workers race: on a busy machine the embedding of a frame can come
    back before that frame's mesh opened the track.  Its vote waits for the
    track instead of being dropped (which cost one more embedding)."""
    embed, mesh = workers
    image, steps = await enrolled_door(embed, mesh, shared_faces)
    sent: list[int] = []
    embedding_tasks: list[asyncio.Task[object]] = []
    first_embedding = asyncio.Event()
    analyze_embed, analyze_mesh = embed.analyze, mesh.analyze

    async def embedded(frame: Frame, **kw: object) -> object:
        sent.append(frame.seq)
        task = asyncio.current_task()
        assert task is not None
        embedding_tasks.append(task)
        first_embedding.set()
        return await analyze_embed(frame, **kw)  # type: ignore[arg-type]

    async def meshed(frame: Frame, **kw: object) -> object:
        if frame.seq == 0:
            # Fault injection: frame 0's mesh only once its embedding is back
            # (and FrameSteps has taken it: its callback runs before ours).
            await first_embedding.wait()
            await asyncio.wait([embedding_tasks[0]])
        return await analyze_mesh(frame, **kw)  # type: ignore[arg-type]

    embed.analyze = embedded  # type: ignore[method-assign]
    mesh.analyze = meshed  # type: ignore[method-assign]
    try:
        decided = await step_until_decided(steps, image, first_seq=0, within_s=60)
        assert decided[0].passed and decided[0].member_id == "obama"
        assert sent[0] == 0 and len(sent) == 3  # frame 0's vote counted
    finally:
        await steps.close()
