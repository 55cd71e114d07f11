"""The camera path: every frame through the vision workers and the decider,
until an attempt is decided; while the door stands open, people are counted.

:class:`CameraTrack` runs for ever under its supervisor: whatever breaks the
loop (storage, the shop, a bug) is shown in the door status and the loop
starts again by itself.  Any vision error means "stay locked": one door event
and one alert per outage, and the loop resumes when the worker is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from drivers.backoff import backoff_delay
from edge.door.actuation import DoorActuator
from edge.door.decision import Attempt, DoorDecider
from edge.door.frames import FrameSteps
from edge.door.records import DoorRecords
from edge.door.store import DoorEvent
from vision.camera import Frame, FrameSource
from vision.errors import VisionError, WorkerError
from vision.worker import VisionWorker

log = logging.getLogger(__name__)

OnAttempt = Callable[[Attempt, dict[str, float]], Awaitable[object]]


class CameraTrack:
    def __init__(
        self,
        source: FrameSource,
        decider: DoorDecider,
        ensure_worker: Callable[[], Awaitable[VisionWorker]],
        mesh_worker: VisionWorker,
        actuator: DoorActuator,
        records: DoorRecords,
        on_attempt: OnAttempt,
    ) -> None:
        self.source = source
        self.decider = decider
        self._ensure_worker = ensure_worker
        self.mesh_worker = mesh_worker
        self.actuator = actuator
        self.records = records
        self._on_attempt = on_attempt
        self.error: str | None = None
        self.restarts = 0
        self.vision_down = False

    async def supervise(self) -> None:
        """Run the camera loop for ever: a failure is shown, and it starts again."""
        attempt = 0
        while True:
            try:
                await self.loop()
                return  # a finite source (a file without loop) ran out
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                self.restarts += 1
                self.decider.reset()
                self.error = f"{type(exc).__name__}: {exc}"
                log.exception("door camera loop failed; restarting")
                self.records.alert("door_camera_failed", f"face access interrupted: {self.error}")
                await asyncio.sleep(min(5.0, 0.2 * 2**attempt))

    async def _start_workers(self) -> VisionWorker:
        attempt = 0
        while True:
            try:
                worker = await self._ensure_worker()
                await self.mesh_worker.start()
                return worker
            except VisionError as exc:
                attempt += 1
                await self._vision_outage(str(exc))
                await asyncio.sleep(backoff_delay(attempt, 0.5, 60.0))

    async def loop(self) -> None:
        worker = await self._start_workers()
        steps = FrameSteps(self.decider, worker, self.mesh_worker)
        crossings = self.actuator.crossings
        try:
            async for frame in self.source.frames():
                now = time.time()
                try:
                    if crossings.watching:
                        await self._count_crossings(frame, now)
                        if crossings.watching:
                            continue  # the door is open: count people, decide nothing
                    if self.actuator.resting(now):
                        continue
                    decided = await steps.step(frame)
                except WorkerError as exc:
                    self.decider.reset()
                    await self._vision_outage(str(exc))
                    continue
                if self.vision_down:
                    self.vision_down = False
                    log.info("door vision recovered")
                self.error = None
                prompt = self.decider.take_prompt()
                if prompt is not None:  # "challenge" mode: for the door display
                    await self.records.record(DoorEvent("face", "challenge", prompt, actor="door"))
                if decided is not None:
                    outcome, frame_ts = decided
                    took = (time.time() - frame_ts) * 1e3
                    latency = {**outcome.latency_ms, "frame_to_decision": took}
                    await self._on_attempt(outcome, latency)
        finally:
            await steps.close()

    async def _count_crossings(self, frame: Frame, now: float) -> None:
        result = await self.mesh_worker.analyze(frame, embed=False)
        tailgate = self.actuator.crossings.feed(result, now)
        if tailgate is None:
            return
        message = f"{tailgate.people} people at the door on one unlock for {tailgate.granted}"
        log.warning("tailgating: %s (member %s)", message, tailgate.member_id)
        await self.records.record(
            DoorEvent("system", "tailgate", message, member_id=tailgate.member_id, actor="door")
        )
        self.records.alert("tailgate", f"tailgating at the door: {message}")

    async def _vision_outage(self, detail: str) -> None:
        """First failure of an outage: one event and one alert; the door stays locked."""
        if self.vision_down:
            return
        self.vision_down = True
        log.warning("door vision unavailable: %s", detail)
        await self.records.record(DoorEvent("system", "error", "vision_unavailable", actor="door"))
        self.records.alert("door_vision_unavailable", f"face access unavailable: {detail}")
