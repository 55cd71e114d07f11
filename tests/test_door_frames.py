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
from edge.door.frames import FrameSteps
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


async def test_the_next_embedding_starts_when_the_last_returns(
    workers: tuple[VisionWorker, VisionWorker], shared_faces: Path
) -> None:
    embed, mesh = workers
    photos = sorted((shared_faces / "dev" / "barack_obama").iterdir())
    image = np.asarray(cv2.imread(str(photos[0])), np.uint8)
    probe = (await embed.analyze(image)).faces[0].embedding
    assert probe is not None
    await embed.set_gallery(["obama"], probe.vector[None, :], MatchConfig())
    decider = DoorDecider(None, AgreementConfig(), LivenessConfig(mode="off"), 6.0, 8)
    steps = FrameSteps(decider, embed, mesh)
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
        async with asyncio.timeout(30):
            decided = None
            seq = 2
            while decided is None:
                decided = await steps.step(Frame(image, time.time(), seq))
                seq += 1
        assert decided[0].passed and decided[0].member_id == "obama"
        assert len(sent) == 3  # one embedding per needed vote
    finally:
        await steps.close()
