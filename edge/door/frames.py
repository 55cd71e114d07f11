"""One camera frame at a time through the two vision workers and the decider.

The mesh worker sees every frame (detection, mesh, eye lids: a few ms), so
liveness runs at the camera's rate.  While the decider still wants an
embedding (:meth:`DoorDecider.wants_embedding`), frames are also handed to the
embedding worker, which runs beside the mesh worker (a second process: dlib
holds the GIL for its ~60 ms).  Embeddings are chained: the moment one comes
back, its match joins the track and, if more votes are still needed, the
newest frame not yet embedded goes to the worker at once, without waiting for
the camera's next frame (the walk-up is three embeddings long; waiting for a
frame between them cost up to a frame interval each).  A decision reached on
an embedding is handed out by the next :meth:`FrameSteps.step`.  Shared by the
door service and bench/bench_door.py.
"""

from __future__ import annotations

import asyncio
import time

from edge.door.decision import Attempt, DoorDecider
from vision.camera import Frame
from vision.pipeline import FrameResult
from vision.worker import VisionWorker

Decided = tuple[Attempt, float]  # the outcome, and the timestamp of the frame it was decided on


class FrameSteps:
    """``await step(frame)`` per camera frame; ``await close()`` when the camera stops.

    Worker errors propagate from ``step`` (the caller treats them as "stay locked")."""

    def __init__(
        self, decider: DoorDecider, embed_worker: VisionWorker, mesh_worker: VisionWorker
    ) -> None:
        self.decider = decider
        self.embed_worker = embed_worker
        self.mesh_worker = mesh_worker
        self._embedding: asyncio.Task[FrameResult] | None = None
        self._latest: Frame | None = None
        self._embedded_seq: int | None = None
        self._outcome: Decided | None = None
        self._error: BaseException | None = None
        self._closed = False
        # The frame whose mesh is being analysed, and an embedding of that same
        # frame that came back first: its vote waits for the mesh to open the
        # track (the decider drops a vote with no track), or it would be lost
        # and cost another embedding.
        self._meshing: int | None = None
        self._early: FrameResult | None = None

    def _embed(self, frame: Frame) -> None:
        self._embedded_seq = frame.seq
        task = asyncio.create_task(
            self.embed_worker.analyze(
                frame, embed=True, require_frontal=True, near=self.decider.track_box
            ),
            name="door-embed",
        )
        self._embedding = task
        task.add_done_callback(self._embedded)

    def _embedded(self, task: asyncio.Task[FrameResult]) -> None:
        if self._embedding is task:
            self._embedding = None
        if task.cancelled() or self._closed:
            return
        try:
            result = task.result()
            if result.seq == self._meshing:
                self._early = result
                return
            self._take_match(result)
        except Exception as exc:  # a worker error, or a bug: raised by the next step
            self._error = self._error or exc

    def _take_match(self, result: FrameResult) -> None:
        outcome = self.decider.feed_match(result, time.time())
        if outcome is not None:
            self._outcome = self._outcome or (outcome, result.ts)
            return
        latest = self._latest
        if (
            latest is not None
            and latest.seq != self._embedded_seq
            and self._outcome is None
            and self.decider.wants_embedding()
        ):
            self._embed(latest)

    def _ready(self) -> Decided | None:
        """An error or a decision the embedding chain reached meanwhile."""
        error, self._error = self._error, None
        if error is not None:
            raise error
        outcome, self._outcome = self._outcome, None
        return outcome

    async def step(self, frame: Frame) -> Decided | None:
        """(outcome, timestamp of the frame it was decided on), or None."""
        ready = self._ready()
        if ready is not None:
            return ready
        self._latest = frame
        if self._embedding is None and self.decider.wants_embedding():
            self._embed(frame)
        # The followed face first, so it is the one that gets the mesh.
        self._meshing = frame.seq
        try:
            result = await self.mesh_worker.analyze(frame, embed=False, near=self.decider.track_box)
        finally:
            self._meshing = None
        ready = self._ready()
        if ready is not None:
            return ready  # decided on an embedding while this frame was meshed
        outcome = self.decider.feed(result, time.time())
        if outcome is not None:
            return outcome, frame.ts
        early, self._early = self._early, None
        if early is not None:
            self._take_match(early)
            return self._ready()
        return None

    async def close(self) -> None:
        self._closed = True
        task, self._embedding = self._embedding, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
