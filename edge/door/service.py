"""The door service: who may come in and how, tying the parts together.

- the camera path (:mod:`edge.door.camera_track`): camera → workers →
  decision, then :meth:`DoorService.handle_attempt` here;
- the ways in decided here: a face attempt, the member PIN at the keypad,
  staff remote unlock; each checked against the access rules
  (:mod:`edge.door.rules`) and the security mode (:mod:`edge.door.security`);
- the lock (:mod:`edge.door.actuation`: unlock with the relock armed first,
  denials, cooldown) and the door events (:mod:`edge.door.records`);
- consent, enrollment, retention and export of face templates (the vault).

Any vision or storage error means "stay locked"; the camera loop survives
both and resumes by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drivers.tasks import watch
from edge.core import Actor, EdgeCore
from edge.door import registry
from edge.door.access import DoorAccess
from edge.door.actuation import DoorActuator
from edge.door.camera_track import CameraTrack
from edge.door.config import DoorConfig
from edge.door.decision import Attempt, DoorDecider, verdict_summary
from edge.door.enroll import embeddings_from_photos
from edge.door.errors import (
    ConsentRequired,
    DoorUnavailable,
    PinThrottled,
    UnknownMember,
)
from edge.door.keypad import Keypad
from edge.door.records import DoorRecords, finite
from edge.door.security import SecondFactors
from edge.door.store import Consent, DoorEvent
from edge.door.vault import Vault
from edge.errors import NotFound
from edge.shop.errors import NotFound as ShopNotFound
from vision.camera import FrameSource, from_uri
from vision.errors import WorkerError
from vision.worker import VisionWorker

log = logging.getLogger(__name__)


class DoorService:
    def __init__(
        self,
        core: EdgeCore,
        config: DoorConfig,
        data_dir: Path,
        *,
        worker: VisionWorker | None = None,
        mesh_worker: VisionWorker | None = None,
        source: FrameSource | None = None,
    ) -> None:
        self.core = core
        self.config = config
        self.vault = Vault(data_dir, config.master_key_file)
        # Two processes: ``worker`` embeds (enrollment, and the camera frames worth
        # embedding) and holds the 1:N gallery; ``mesh_worker`` runs detection
        # and the mesh on every camera frame, so liveness sees the camera's rate
        # while an embedding (~60 ms, holding dlib's GIL) is under way.
        self.worker = worker or VisionWorker(config.worker)
        self.mesh_worker = mesh_worker or VisionWorker(config.worker, descriptor=False)
        self.source = source
        self.enrolled_members = 0
        self.decider = DoorDecider(
            None,
            config.agreement,
            config.liveness,
            config.decision_window_s,
            config.unknown_frames,
        )
        self.keypad = Keypad(config)
        self._tasks: list[asyncio.Task[None]] = []
        self.records = DoorRecords(core, self.vault, f"{config.room}/{config.lock}")
        self.actuator = DoorActuator(core, config, self.records)
        self.camera: CameraTrack | None = None
        self._second = SecondFactors()
        self._worker_started = False
        self._started = False
        self._stopped = False
        # The access rules' clock (an aware instant); tests set their own.
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.access = DoorAccess(core, config, self.vault, lambda: self.clock())
        # Whether the member just recognised is challenged: the security in force now.
        self.decider.wants_challenge = lambda: self.access.security().challenge

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        await self.vault.open()
        cfg = self.config
        if self.source is None and cfg.camera:
            # Opening a camera looks at the device or file: off the loop.
            self.source = await asyncio.to_thread(
                from_uri, cfg.camera, loop=cfg.camera_loop, fps=cfg.camera_fps
            )
        await self.keypad.load_token(self.vault.data_dir)
        await self.reload_templates()
        registry.register(self.core, self)
        self.actuator.relock.start()
        spawn = self._tasks.append
        spawn(asyncio.create_task(self._retention_loop(), name="door-retention"))
        spawn(asyncio.create_task(self._reload_loop(), name="door-template-reload"))
        if self.source is not None:
            await self.source.start()
            spawn(asyncio.create_task(self.camera_track().supervise(), name="door-camera"))

    async def run(self) -> None:
        """A supervised component: start, serve until cancelled, stop.  Raises
        if one of the door's own tasks (camera, retention, reload) dies."""
        await self.start()
        try:
            await watch(self._tasks)
        finally:
            await self.stop()

    async def stop(self) -> None:
        if self._stopped or not self._started:
            return
        self._stopped = True
        registry.unregister(self.core, self)
        for task in reversed(self._tasks):
            task.cancel()
            await asyncio.wait([task])
        await self.actuator.relock.close()  # fail secure: an armed relock is carried out first
        await self.records.close()
        if self.source is not None:
            await self.source.stop()
        await self.mesh_worker.stop()
        await self.worker.stop()
        await self.vault.close()

    def keypad_ok(self, token: str) -> bool:
        return self.keypad.token_ok(token)

    async def ensure_worker(self) -> VisionWorker:
        if not self._worker_started:
            await self.worker.start()
            self._worker_started = True
        return self.worker

    # -- templates ---------------------------------------------------------------------
    async def reload_templates(self) -> int:
        """Load the templates into the worker's 1:N gallery (matching runs there,
        never on the loop).  A worker that cannot take them now gets them when it
        restarts: the gallery is kept by :class:`VisionWorker`."""
        ids, matrix = await self.vault.load_templates()
        self.decider.reset()
        try:
            self.enrolled_members = await self.worker.set_gallery(ids, matrix, self.config.match)
        except WorkerError as exc:
            self.enrolled_members = len(set(ids))
            log.warning(
                "vision worker did not take the templates now (%s); it loads them on restart", exc
            )
        return self.enrolled_members

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.template_reload_s)
            try:
                if await self.vault.templates_changed():
                    await self.reload_templates()
            except Exception:
                log.exception("could not reload face templates")

    # -- the camera path ---------------------------------------------------------------
    def camera_track(self) -> CameraTrack:
        """The camera path for ``self.source`` (made once)."""
        if self.camera is None:
            assert self.source is not None
            self.camera = CameraTrack(
                self.source,
                self.decider,
                self.ensure_worker,
                self.mesh_worker,
                self.actuator,
                self.records,
                self.handle_attempt,
            )
        return self.camera

    async def handle_attempt(self, attempt: Attempt, latency: dict[str, float]) -> DoorEvent:
        """Decide on one face attempt: member checks, then unlock or deny."""
        security = self.access.security()
        base: dict[str, Any] = {
            "member_id": attempt.member_id,
            "distance": finite(attempt.distance),
            "margin": finite(attempt.margin),
            "liveness": verdict_summary(attempt.liveness),
            "security": security.as_dict(),
        }
        if not attempt.passed or attempt.member_id is None:
            return await self.actuator.deny("face", attempt.reason, latency, **base)
        t0 = time.perf_counter()
        refusal = await self.access.refusal(attempt.member_id, needs_consent=True)
        latency["member_check"] = (time.perf_counter() - t0) * 1e3
        if refusal is not None:
            return await self.actuator.deny("face", refusal, latency, **base)
        who = Actor("door", attempt.member_id)
        if security.mode == "face_and_pin":
            window = self.config.security.second_factor_s
            if not self._second.complete(attempt.member_id, "face", time.time(), window):
                return await self.actuator.pending("face", "awaiting_pin", latency, **base)
            return await self.actuator.unlock("face+pin", who, latency, **base)
        return await self.actuator.unlock("face", who, latency, **base)

    @property
    def cooling_down(self) -> bool:
        return self.actuator.cooling_down

    # -- staff remote unlock and the keypad --------------------------------------------
    async def remote_unlock(self, staff: Actor, reason: str) -> DoorEvent:
        log.info("remote unlock by %s: %s", staff, reason)
        return await self.actuator.unlock("remote", staff, {}, reason=f"remote: {reason}")

    async def set_pin(self, member_id: str, pin: str, by: str) -> None:
        self.keypad.check_format(pin)
        await self._require_member(member_id)
        pin_hash = await self.keypad.hash_pin(pin)
        await self.vault.set_pin(member_id, pin_hash, by)

    async def pin_unlock(self, member_id: str, pin: str, keypad: str) -> DoorEvent:
        security = self.access.security()
        fields: dict[str, Any] = {"member_id": member_id, "security": security.as_dict()}
        if security.mode == "face_only":
            return await self.actuator.deny("pin", "pin_not_allowed", None, **fields)
        keys = [f"member:{member_id}", f"keypad:{keypad}"]
        locked_until = await self.vault.pin_locked_until(keys)
        if locked_until > time.time():
            log.warning(
                "PIN refused for member %s at keypad %s: locked out for %.0f s more",
                member_id,
                keypad,
                locked_until - time.time(),
            )
            raise PinThrottled("too many wrong PINs; try later", locked_until - time.time())
        stored = await self.vault.pin_hash(member_id)
        if not await self.keypad.verify(stored, pin):
            log.warning("wrong PIN for member %s at keypad %s", member_id, keypad)
            await self.vault.pin_failure(keys, self.keypad.throttle)
            return await self.actuator.deny("pin", "wrong_pin", None, **fields)
        await self.vault.pin_success(keys[0])
        refusal = await self.access.refusal(member_id, needs_consent=False)
        if refusal is not None:
            return await self.actuator.deny("pin", refusal, None, **fields)
        who = Actor("door", member_id)
        if security.mode == "face_and_pin":
            window = self.config.security.second_factor_s
            if not self._second.complete(member_id, "pin", time.time(), window):
                return await self.actuator.pending("pin", "awaiting_face", None, **fields)
            return await self.actuator.unlock("face+pin", who, {}, **fields)
        return await self.actuator.unlock("pin", who, {}, **fields)

    async def _require_member(self, member_id: str) -> None:
        try:
            await self.core.run_shop(lambda shop: shop.get_member(member_id))
        except ShopNotFound:
            raise UnknownMember(f"member_id: no member {member_id!r}", "member_id") from None

    # -- consent, enrollment, deletion -------------------------------------------------
    async def grant_consent(
        self, member_id: str, witness: str, purpose: str, retention_days: int | None = None
    ) -> Consent:
        await self._require_member(member_id)
        days = min(retention_days or self.config.retention_days, self.config.retention_days)
        return await self.vault.grant_consent(
            member_id, self.config.consent_text_version, purpose, days, witness
        )

    async def withdraw_consent(self, member_id: str, witness: str, note: str = "") -> int:
        n = await self.vault.withdraw_consent(member_id, witness, note or "withdrawn")
        await self.reload_templates()
        return n

    async def enroll_photos(
        self, member_id: str, photos: list[tuple[str, bytes]], by: str
    ) -> list[str]:
        await self._require_member(member_id)
        if await self.vault.active_consent(member_id) is None:
            raise ConsentRequired(
                f"member {member_id} has no active consent to face access; record it first",
                field="member_id",
            )
        worker = await self.ensure_worker()
        cfg = self.config
        vectors = await embeddings_from_photos(
            worker, photos, cfg.quality, cfg.enroll_min_photos, cfg.enroll_max_photos
        )
        ids = await self.vault.enroll(member_id, vectors, by)
        await self.reload_templates()
        return ids

    async def on_member_change(self, member_id: str, active: bool, consent: bool | None) -> int:
        """For the sync engine: membership ended or consent withdrawn elsewhere → destroy."""
        if consent is False:
            return await self.withdraw_consent(member_id, "sync", "withdrawn via sync")
        if not active:
            n = await self.vault.destroy_templates(member_id, "membership_ended")
            await self.reload_templates()
            return n
        return 0

    async def expire_retention(self, now: float | None = None) -> list[str]:
        expired = await self.vault.expired_members(self.config.retention_days, now)
        for member_id in expired:
            await self.vault.destroy_templates(member_id, "retention_expired")
        if expired:
            await self.reload_templates()
        return expired

    async def _retention_loop(self) -> None:
        while True:
            try:
                gone = await self.expire_retention()
                if gone:
                    log.info("retention expired for %d member(s): templates destroyed", len(gone))
            except Exception:
                log.exception("retention check failed")
            await asyncio.sleep(self.config.retention_check_s)

    async def export(self, member_id: str) -> dict[str, Any]:
        member: dict[str, Any] | None = None
        with contextlib.suppress(ShopNotFound, NotFound):
            record = await self.core.run_shop(lambda shop: shop.get_member(member_id))
            member = record.to_json()
        data = await self.vault.export(member_id)
        if member is None and not data["consent_history"] and not data["door_events"]:
            raise UnknownMember(f"member_id: nothing stored about {member_id!r}", "member_id")
        return {"member_id": member_id, "member": member, **data}

    def status(self) -> dict[str, Any]:
        camera, relock, spool = self.camera, self.actuator.relock, self.records.spool
        return {
            "door": self.records.door_id,
            "camera": str(self.source) if self.source is not None else None,
            "vision": "down" if camera is not None and camera.vision_down else "ok",
            "camera_loop": (camera.error if camera is not None else None) or "ok",
            "camera_restarts": camera.restarts if camera is not None else 0,
            "storage": spool.last_error or "ok",
            "spooled_events": spool.pending,
            "relock_armed": relock.armed,
            "relock": relock.failing or "ok",
            "enrolled_members": self.enrolled_members,
            "liveness": self.config.liveness.mode,
            "security": self.access.security().as_dict(),  # in force now
            "cooling_down": self.cooling_down,
            "worker_restarts": self.worker.restarts + self.mesh_worker.restarts,
        }


def door_or_unavailable(core: EdgeCore) -> DoorService:
    door = registry.door_for(core)
    if door is None:
        raise DoorUnavailable("no [door] section in the site config, or it is not running")
    return door
