"""``[door]``: face access at the entrance, the keypad PIN, consent retention.

The checks that need the rest of the site (the room and lock exist, the lock
is a lock) live in :func:`check_door_against_rooms`, which
:class:`edge.config.SiteConfig` calls from its cross-field validator.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from drivers.config import ID_PATTERN, LocatedError, StrictModel
from drivers.model import DeviceKind

# The settings models only: numpy and OpenCV load when a door starts.
from vision.config import (
    AgreementConfig,
    LivenessConfig,
    MatchConfig,
    QualityConfig,
    WorkerConfig,
)

THREE_YEARS_DAYS = 3 * 365


class DoorConfig(StrictModel):
    """The entrance door: camera, decision rules, keypad and biometric retention."""

    room: str = Field(pattern=ID_PATTERN, description="Room holding the entrance lock.")
    lock: str = Field(pattern=ID_PATTERN, description="Lock device id in that room.")
    camera: str | None = Field(
        None,
        description="Camera: device index, /dev/videoN, rtsp:// URL, video file or photo "
        "folder; unset disables face access (PIN and remote unlock still work).",
    )
    camera_fps: float | None = Field(
        None, gt=0, le=60, description="Pace for files and folders (live cameras pace themselves)."
    )
    camera_loop: bool = Field(False, description="Replay a file or folder source forever.")
    relock_s: float = Field(5.0, gt=0, le=300, description="Seconds before the door relocks.")
    decision_window_s: float = Field(
        6.0,
        gt=0,
        le=60,
        description="After members agree, how long liveness may take before the attempt fails.",
    )
    unknown_frames: int = Field(
        8,
        ge=1,
        le=1000,
        description="Frames of an unrecognised face before it counts as a failure.",
    )
    failure_limit: int = Field(
        5,
        ge=1,
        le=100,
        description="Failed attempts within failure_window_s that start a cooldown.",
    )
    failure_window_s: float = Field(
        120.0, gt=0, description="Window, seconds, over which failed attempts are counted."
    )
    cooldown_s: float = Field(
        60.0, gt=0, description="Seconds the door ignores faces after too many failures."
    )
    pin_max_attempts: int = Field(
        5, ge=1, le=100, description="Wrong PINs (per member, and per keypad) before a lockout."
    )
    pin_lockout_s: float = Field(300.0, gt=0, description="Lockout after too many wrong PINs.")
    retention_days: int = Field(
        THREE_YEARS_DAYS,
        ge=1,
        le=THREE_YEARS_DAYS,
        description="Templates are destroyed this many days after the member's last visit.",
    )
    retention_check_s: float = Field(
        3600.0, ge=1, description="How often retention expiry is checked, seconds."
    )
    template_reload_s: float = Field(
        10.0, gt=0, description="How often templates enrolled by another process are picked up."
    )
    enroll_min_photos: int = Field(3, ge=1, le=10, description="Fewest photos per enrollment.")
    enroll_max_photos: int = Field(5, ge=1, le=10, description="Most photos per enrollment.")
    master_key_file: Path | None = Field(
        None,
        description="Template master key (0600, created if missing); default "
        "<data_dir>/door-master.key.  A systemd credential 'vision-master-key' wins.",
    )
    consent_text_version: str = Field(
        "2024-01", min_length=1, max_length=40, description="Current consent text version."
    )
    match: MatchConfig = Field(default_factory=MatchConfig, description="1:N matching rules.")
    agreement: AgreementConfig = Field(
        default_factory=AgreementConfig, description="Frames that must agree on a member."
    )
    liveness: LivenessConfig = Field(
        default_factory=LivenessConfig, description="Liveness evidence required before unlock."
    )
    worker: WorkerConfig = Field(
        default_factory=WorkerConfig, description="The inference worker process."
    )
    quality: QualityConfig = Field(
        default_factory=QualityConfig, description="Enrollment photo quality gate."
    )

    @model_validator(mode="after")
    def _consistent(self) -> DoorConfig:
        if self.enroll_max_photos < self.enroll_min_photos:
            raise ValueError(
                f"enroll_max_photos ({self.enroll_max_photos}) must be at least "
                f"enroll_min_photos ({self.enroll_min_photos})"
            )
        if self.liveness.mode != "off" and self.decision_window_s < self.liveness.window_s:
            raise ValueError(
                f"decision_window_s ({self.decision_window_s}) must be at least "
                f"liveness.window_s ({self.liveness.window_s}), or liveness never has time"
            )
        if self.liveness.mode != "off" and not self.worker.mesh:
            raise ValueError("liveness needs the face mesh: set worker.mesh = true or mode 'off'")
        return self


def check_door_against_rooms(door: DoorConfig, rooms: Sequence[Any]) -> None:
    """Raise ValueError unless ``door.room`` exists and ``door.lock`` is a lock in it."""
    room = next((r for r in rooms if r.id == door.room), None)
    if room is None:
        raise LocatedError(
            ("door", "room"),
            f"door.room: {door.room!r} is not a room ({sorted(r.id for r in rooms)})",
        )
    device = next((d for d in room.devices if d.id == door.lock), None)
    if device is None:
        raise LocatedError(
            ("door", "lock"), f"door.lock: {door.lock!r} is not a device of room {door.room!r}"
        )
    if device.kind is not DeviceKind.LOCK:
        raise LocatedError(
            ("door", "lock"), f"door.lock: {door.room}/{door.lock} is a {device.kind}, not a lock"
        )
