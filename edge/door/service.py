"""The door service: camera → worker → decision → shop check → lock, and the
non-biometric ways in (member PIN at the keypad, staff remote unlock).

The lock is only ever touched through :meth:`EdgeCore.command`, with actor
``door:<member id>`` (face, PIN) or the staff member (remote).  Fail secure:
the relock (:mod:`edge.door.relock`) is armed before an unlock is sent and
runs on time and the lock's reported state alone; an unlock whose command log
row cannot be written relocks at once.  Every attempt becomes a door event,
stored durably and published on the event bus as type ``door``; an event the
database does not take is spooled and written when it returns.  Events carry
scores, the liveness verdict and per-stage latency, never a template or an
image.  Any vision or storage error means "stay locked"; the camera loop
survives both and resumes by itself.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import hmac
import logging
import math
import os
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from drivers.backoff import backoff_delay
from drivers.tasks import watch
from edge.core import Actor, EdgeCore
from edge.door import registry
from edge.door.config import DoorConfig
from edge.door.decision import Attempt, DoorDecider, verdict_summary
from edge.door.enroll import embeddings_from_photos
from edge.door.errors import (
    ConsentRequired,
    DoorRefused,
    DoorUnavailable,
    PinThrottled,
    UnknownMember,
)
from edge.door.frames import FrameSteps
from edge.door.relock import Relocker
from edge.door.rules import access_refusal
from edge.door.security import SecondFactors
from edge.door.store import Consent, DoorEvent
from edge.door.tailgate import CrossingCounter
from edge.door.vault import Vault
from edge.errors import NotFound, StorageError
from edge.passwords import Passwords
from edge.shop.errors import NotFound as ShopNotFound
from edge.spool import WriteSpool
from edge.throttle import Throttle
from vision.camera import Frame, FrameSource, from_uri
from vision.errors import VisionError, WorkerError
from vision.worker import VisionWorker

log = logging.getLogger(__name__)
PIN_DIGITS = (4, 8)
KEYPAD_TOKEN_FILE = "door-keypad.token"


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


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
        self.hasher = Passwords()
        # pin_max_attempts wrong PINs within the lockout time lock for that long.
        lockout = self.config.pin_lockout_s
        self.pin_throttle = Throttle(self.config.pin_max_attempts - 1, lockout, lockout, lockout)
        self._tasks: list[asyncio.Task[None]] = []
        self.relock = Relocker(core, config.room, config.lock, config.relock_s, self._alert)
        self.event_spool: WriteSpool[DoorEvent] = WriteSpool("door-events", self._write_event)
        self._camera_error: str | None = None
        self.camera_restarts = 0
        self._failures: collections.deque[float] = collections.deque()
        self._cooldown_until = 0.0
        self._quiet_until = 0.0
        self.crossings = CrossingCounter()
        self._second = SecondFactors()
        self._vision_down = False
        self._worker_started = False
        self._keypad_hash = ""
        self._started = False
        self._stopped = False
        # The access rules' clock (an aware instant); tests set their own.
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)

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
        self._keypad_hash = await asyncio.to_thread(self._keypad_token_hash)
        await self.reload_templates()
        registry.register(self.core, self)
        self.relock.start()
        spawn = self._tasks.append
        spawn(asyncio.create_task(self._retention_loop(), name="door-retention"))
        spawn(asyncio.create_task(self._reload_loop(), name="door-template-reload"))
        if self.source is not None:
            await self.source.start()
            spawn(asyncio.create_task(self._camera_supervisor(), name="door-camera"))

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
        await self.relock.close()  # fail secure: an armed relock is carried out first
        await self.event_spool.flush(timeout=2.0)
        self.event_spool.close()
        if self.source is not None:
            await self.source.stop()
        await self.mesh_worker.stop()
        await self.worker.stop()
        await self.vault.close()

    def _keypad_token_hash(self) -> str:
        """The door keypad's token: generated once into a 0600 file in the data dir."""
        path = self.vault.data_dir / KEYPAD_TOKEN_FILE
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32) + "\n")
        return hashlib.sha256(path.read_text().strip().encode()).hexdigest()

    def keypad_ok(self, token: str) -> bool:
        digest = hashlib.sha256(token.encode()).hexdigest()
        return bool(token) and hmac.compare_digest(digest, self._keypad_hash)

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
    async def _camera_supervisor(self) -> None:
        """Run the camera loop for ever: whatever breaks it (storage, the shop,
        a bug) is shown in the status and the loop starts again by itself."""
        attempt = 0
        while True:
            try:
                await self._camera_loop()
                return  # a finite source (a file without loop) ran out
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                self.camera_restarts += 1
                self.decider.reset()
                self._camera_error = f"{type(exc).__name__}: {exc}"
                log.exception("door camera loop failed; restarting")
                self._alert("door_camera_failed", f"face access interrupted: {self._camera_error}")
                await asyncio.sleep(min(5.0, 0.2 * 2**attempt))

    async def _camera_loop(self) -> None:
        assert self.source is not None
        attempt = 0
        while True:
            try:
                await self.ensure_worker()
                await self.mesh_worker.start()
                break
            except VisionError as exc:
                attempt += 1
                await self._vision_outage(str(exc))
                await asyncio.sleep(backoff_delay(attempt, 0.5, 60.0))
        steps = FrameSteps(self.decider, self.worker, self.mesh_worker)
        try:
            async for frame in self.source.frames():
                now = time.time()
                try:
                    if self.crossings.watching:
                        await self._count_crossings(frame, now)
                        if self.crossings.watching:
                            continue  # the door is open: count people, decide nothing
                    if now < self._quiet_until or now < self._cooldown_until:
                        continue
                    decided = await steps.step(frame)
                except WorkerError as exc:
                    self.decider.reset()
                    await self._vision_outage(str(exc))
                    continue
                if self._vision_down:
                    self._vision_down = False
                    log.info("door vision recovered")
                self._camera_error = None
                prompt = self.decider.take_prompt()
                if prompt is not None:  # "challenge" mode: for the door display
                    await self._record(DoorEvent("face", "challenge", prompt, actor="door"))
                if decided is not None:
                    await self._decided(*decided)
        finally:
            await steps.close()

    async def _count_crossings(self, frame: Frame, now: float) -> None:
        result = await self.mesh_worker.analyze(frame, embed=False)
        tailgate = self.crossings.feed(result, now)
        if tailgate is None:
            return
        message = f"{tailgate.people} people at the door on one unlock for {tailgate.granted}"
        log.warning("tailgating: %s (member %s)", message, tailgate.member_id)
        await self._record(
            DoorEvent("system", "tailgate", message, member_id=tailgate.member_id, actor="door")
        )
        self._alert("tailgate", f"tailgating at the door: {message}")

    async def _decided(self, outcome: Attempt, frame_ts: float) -> None:
        latency = {**outcome.latency_ms, "frame_to_decision": (time.time() - frame_ts) * 1e3}
        await self.handle_attempt(outcome, latency)

    async def _vision_outage(self, detail: str) -> None:
        """First failure of an outage: one event and one alert; the door stays locked."""
        if self._vision_down:
            return
        self._vision_down = True
        log.warning("door vision unavailable: %s", detail)
        await self._record(DoorEvent("system", "error", "vision_unavailable", actor="door"))
        self._alert("door_vision_unavailable", f"face access unavailable: {detail}")

    async def handle_attempt(self, attempt: Attempt, latency: dict[str, float]) -> DoorEvent:
        """Decide on one face attempt: member checks, then unlock or deny."""
        liveness = verdict_summary(attempt.liveness)
        base: dict[str, Any] = {
            "member_id": attempt.member_id,
            "distance": _finite(attempt.distance),
            "margin": _finite(attempt.margin),
            "liveness": liveness,
        }
        if not attempt.passed or attempt.member_id is None:
            return await self._deny("face", attempt.reason, latency, **base)
        t0 = time.perf_counter()
        refusal = await self._member_refusal(attempt.member_id)
        latency["member_check"] = (time.perf_counter() - t0) * 1e3
        if refusal is not None:
            return await self._deny("face", refusal, latency, **base)
        if self._security_mode() == "face_and_pin":
            if not self._second.complete(
                attempt.member_id, "face", time.time(), self.config.security.second_factor_s
            ):
                return await self._pending("face", "awaiting_pin", latency, **base)
            return await self._unlock("face+pin", Actor("door", attempt.member_id), latency, **base)
        return await self._unlock("face", Actor("door", attempt.member_id), latency, **base)

    def _security_mode(self) -> str:
        return self.config.security.mode_at(self.clock(), ZoneInfo(self.core.config.site.timezone))

    async def _pending(
        self, method: str, reason: str, latency: dict[str, float] | None, **fields: Any
    ) -> DoorEvent:
        """face_and_pin: one factor is in; the door stays locked until the other comes."""
        self._quiet_until = time.time() + 3.0  # not the same face again while they type
        return await self._record(
            DoorEvent(method, "pending", reason, latency_ms=_rounded(latency), **fields)
        )

    async def _member_refusal(self, member_id: str) -> str | None:
        return await self._access_refusal(member_id, needs_consent=True)

    async def _access_refusal(self, member_id: str, needs_consent: bool) -> str | None:
        """The access rule (edge/door/rules.py) that refuses this member now, or None."""
        try:
            member = await self.core.run_shop(lambda shop: shop.get_member(member_id))
        except ShopNotFound:
            return "not_a_member"
        except NotFound:
            return "shop_unavailable"
        consent = not needs_consent or await self.vault.active_consent(member_id) is not None
        site = self.core.config
        return access_refusal(
            self.config.access,
            site.opening_hours,
            ZoneInfo(site.site.timezone),
            active=member.active,
            tier=member.tier,
            consent=consent,
            at=self.clock(),
        )

    async def _unlock(
        self,
        method: str,
        actor: Actor,
        latency: dict[str, float],
        reason: str = "unlocked",
        **fields: Any,
    ) -> DoorEvent:
        t0 = time.perf_counter()
        # Fail secure: the relock is armed before the unlock goes out, so no
        # failure after this line (storage, a bug, a cancelled request) can
        # leave the door open.
        self.relock.arm()
        try:
            outcome = await self.core.command(
                self.config.room, self.config.lock, {"locked": False}, actor
            )
        except StorageError as exc:
            # Sent, but not recorded: an unlock nobody can account for is undone.
            self.relock.now()
            await self._record(
                DoorEvent(
                    method,
                    "error",
                    "unlock_unrecorded",
                    actor=str(actor),
                    lock_result="unrecorded",
                    **fields,
                )
            )
            raise StorageError(f"door unlock could not be recorded; relocked: {exc}") from exc
        except BaseException:
            self.relock.now()
            raise
        latency["lock"] = (time.perf_counter() - t0) * 1e3
        if outcome.ok:
            self._quiet_until = time.time() + self.config.relock_s
            if method in ("face", "pin", "face+pin") and self.config.tailgate_window_s > 0:
                member = actor.id if actor.kind == "door" else None
                self.crossings.start(1, member, time.time() + self.config.tailgate_window_s)
        else:
            self.relock.now()  # it may have opened before failing to confirm
        decision = "unlock" if outcome.ok else "error"
        reason = reason if outcome.ok else f"lock_{outcome.result}"
        return await self._record(
            DoorEvent(
                method,
                decision,
                reason,
                actor=str(actor),
                latency_ms=_rounded(latency),
                lock_result=outcome.result,
                **fields,
            )
        )

    async def _deny(
        self, method: str, reason: str, latency: dict[str, float] | None, **fields: Any
    ) -> DoorEvent:
        event = await self._record(
            DoorEvent(method, "deny", reason, latency_ms=_rounded(latency), **fields)
        )
        self._quiet_until = time.time() + 1.0
        await self._count_failure()
        return event

    async def _count_failure(self) -> None:
        now = time.time()
        self._failures.append(now)
        while self._failures and self._failures[0] < now - self.config.failure_window_s:
            self._failures.popleft()
        if len(self._failures) >= self.config.failure_limit:
            self._cooldown_until = now + self.config.cooldown_s
            count = len(self._failures)
            self._failures.clear()
            await self._record(
                DoorEvent("system", "cooldown", f"{count} failed attempts", actor="door")
            )
            self._alert(
                "door_cooldown",
                f"{count} failed attempts at the door; face access paused "
                f"for {self.config.cooldown_s:.0f}s",
            )

    def _alert(self, kind: str, message: str) -> None:
        self.core.events.publish("alert", {"kind": kind, "message": message, "door": self._door_id})

    @property
    def _door_id(self) -> str:
        return f"{self.config.room}/{self.config.lock}"

    async def _record(self, event: DoorEvent) -> DoorEvent:
        """Store and publish one event.  A database that does not take it (locked,
        full disk) never stops the caller: the event is spooled and written
        when storage returns, and the door status shows the fault meanwhile."""
        stamped = event if event.ts else dataclasses.replace(event, ts=time.time())
        stored: DoorEvent = stamped
        if self.event_spool.pending:
            self.event_spool.add(stamped)
        else:
            try:
                stored = await self._write_event(stamped)
            except Exception as exc:
                log.error("door event not stored (%s); spooled", exc)
                self.event_spool.add(stamped, exc)
        # room_id stays None: tablets never see door events.
        self.core.events.publish(
            "door",
            {**stored.as_dict(), "door": self._door_id, "spooled": stored.id is None},
        )
        return stored

    async def _write_event(self, event: DoorEvent) -> DoorEvent:
        return await self.vault.record_event(event)

    @property
    def cooling_down(self) -> bool:
        return time.time() < self._cooldown_until

    # -- staff remote unlock and the keypad --------------------------------------------
    async def remote_unlock(self, staff: Actor, reason: str) -> DoorEvent:
        log.info("remote unlock by %s: %s", staff, reason)
        return await self._unlock("remote", staff, {}, reason=f"remote: {reason}")

    async def set_pin(self, member_id: str, pin: str, by: str) -> None:
        if not (pin.isdigit() and PIN_DIGITS[0] <= len(pin) <= PIN_DIGITS[1]):
            raise DoorRefused(f"pin: {PIN_DIGITS[0]} to {PIN_DIGITS[1]} digits", field="pin")
        await self._require_member(member_id)
        pin_hash = await asyncio.to_thread(self.hasher.hash, pin)
        await self.vault.set_pin(member_id, pin_hash, by)

    async def pin_unlock(self, member_id: str, pin: str, keypad: str) -> DoorEvent:
        mode = self._security_mode()
        if mode == "face_only":
            return await self._deny("pin", "pin_not_allowed", None, member_id=member_id)
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
        ok = await asyncio.to_thread(self._verify_pin, stored, pin)
        if not ok:
            log.warning("wrong PIN for member %s at keypad %s", member_id, keypad)
            await self.vault.pin_failure(keys, self.pin_throttle)
            return await self._deny("pin", "wrong_pin", None, member_id=member_id)
        await self.vault.pin_success(keys[0])
        refusal = await self._member_refusal_pin(member_id)
        if refusal is not None:
            return await self._deny("pin", refusal, None, member_id=member_id)
        if mode == "face_and_pin":
            window = self.config.security.second_factor_s
            if not self._second.complete(member_id, "pin", time.time(), window):
                return await self._pending("pin", "awaiting_face", None, member_id=member_id)
            return await self._unlock("face+pin", Actor("door", member_id), {}, member_id=member_id)
        return await self._unlock("pin", Actor("door", member_id), {}, member_id=member_id)

    def _verify_pin(self, stored: str | None, pin: str) -> bool:
        # Unknown member or no PIN: the same work, so timing reveals nothing.
        return self.hasher.verify(stored, pin)

    async def _member_refusal_pin(self, member_id: str) -> str | None:
        # A PIN is not biometric: no consent needed; every other rule applies.
        return await self._access_refusal(member_id, needs_consent=False)

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
        return {
            "door": self._door_id,
            "camera": str(self.source) if self.source is not None else None,
            "vision": "down" if self._vision_down else "ok",
            "camera_loop": self._camera_error or "ok",
            "camera_restarts": self.camera_restarts,
            "storage": self.event_spool.last_error or "ok",
            "spooled_events": self.event_spool.pending,
            "relock_armed": self.relock.armed,
            "relock": self.relock.failing or "ok",
            "enrolled_members": self.enrolled_members,
            "liveness": self.config.liveness.mode,
            "cooling_down": self.cooling_down,
            "worker_restarts": self.worker.restarts + self.mesh_worker.restarts,
        }


def door_or_unavailable(core: EdgeCore) -> DoorService:
    door = registry.door_for(core)
    if door is None:
        raise DoorUnavailable("no [door] section in the site config, or it is not running")
    return door


def _rounded(latency: dict[str, float] | None) -> dict[str, float] | None:
    return None if latency is None else {k: round(v, 2) for k, v in latency.items()}
