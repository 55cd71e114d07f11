"""One camera frame at a time through the two vision workers and the decider.

The mesh worker sees every frame (detection, mesh, eye lids: a few ms), so
liveness runs at the camera's rate.  While the decider still wants an
embedding (:meth:`DoorDecider.wants_embedding`), the latest frame is also
handed to the embedding worker, which runs beside the mesh worker (a second
process: dlib holds the GIL for its ~60 ms); its match joins the track when it
comes back.  Shared by the door service and bench/bench_door.py.
"""

from __future__ import annotations

import asyncio
import time

from edge.door.decision import Attempt, DoorDecider
from vision.camera import Frame
from vision.pipeline import FrameResult
from vision.worker import VisionWorker


class FrameSteps:
    """``await step(frame)`` per camera frame; ``await close()`` when the camera stops.

    Worker errors propagate (the caller treats them as "stay locked")."""

    def __init__(
        self, decider: DoorDecider, embed_worker: VisionWorker, mesh_worker: VisionWorker
    ) -> None:
        self.decider = decider
        self.embed_worker = embed_worker
        self.mesh_worker = mesh_worker
        self._embedding: asyncio.Task[FrameResult] | None = None

    async def step(self, frame: Frame) -> tuple[Attempt, float] | None:
        """(outcome, timestamp of the frame it was decided on), or None."""
        task = self._embedding
        if task is not None and task.done():
            self._embedding = None
            embedded = task.result()
            outcome = self.decider.feed_match(embedded, time.time())
            if outcome is not None:
                return outcome, embedded.ts
        if self._embedding is None and self.decider.wants_embedding():
            self._embedding = asyncio.create_task(
                self.embed_worker.analyze(
                    frame, embed=True, require_frontal=True, near=self.decider.track_box
                ),
                name="door-embed",
            )
        # The followed face first, so it is the one that gets the mesh.
        result = await self.mesh_worker.analyze(frame, embed=False, near=self.decider.track_box)
        outcome = self.decider.feed(result, time.time())
        return None if outcome is None else (outcome, frame.ts)

    async def close(self) -> None:
        task, self._embedding = self._embedding, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
