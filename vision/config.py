"""The vision settings models (door.liveness, door.match, door.agreement,
door.quality, door.worker), without numpy or OpenCV: the site config imports
them on every start, and a daemon without a door must not load the image
libraries (docs/benchmarks.md, idle RSS).  The code using them lives beside
its algorithm (vision.liveness, vision.matcher, ...), which re-exports them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from drivers.config import StrictModel

LivenessMode = Literal["off", "blink", "motion", "blink_or_motion", "blink_and_motion", "challenge"]
# What the door display asks for in "challenge" mode.  The mesh's yaw ratio grows
# when the subject turns to their left (the nose moves to the camera's right).
Challenge = Literal["blink", "turn_left", "turn_right"]
CHALLENGES: tuple[Challenge, ...] = ("blink", "turn_left", "turn_right")

DEFAULT_THRESHOLD = 0.55


class LivenessConfig(StrictModel):
    """What counts as a live face, and over how long."""

    mode: LivenessMode = Field(
        "blink",
        description="Evidence required; 'off' always passes.  Motion alone is not the "
        "default: a print rocked or bent shows it (docs/door.md).  'challenge': the door "
        "asks for a blink or a turn left/right once the member is recognised, and only "
        "that, after the prompt, counts.",
    )
    window_s: float = Field(
        4.0, gt=0, le=60, description="Only samples this recent are considered, seconds."
    )
    min_samples: int = Field(
        5, ge=3, description="Samples needed in the window before anything can pass."
    )
    blink_close_ratio: float = Field(
        0.8,
        gt=0,
        lt=1,
        description="A blink: eye openness drops below this fraction of the open-eye "
        "baseline (0.8: measured on the print attack set, docs/benchmarks.md)...",
    )
    blink_reopen_ratio: float = Field(
        0.9, gt=0, le=1, description="...and later climbs back above this fraction."
    )
    blink_max_shape_change: float = Field(
        0.03,
        gt=0,
        le=1,
        description="A blink only counts if the face's shape (log of eye distance over "
        "eye-to-mouth distance, from the detector's keypoints) moves less than this "
        "from the last open-eye sample to the reopening: a rocked print does not "
        "keep it (docs/door.md).",
    )
    blink_max_pose_change: float = Field(
        0.04,
        gt=0,
        le=1,
        description="The same with the mesh's yaw and pitch ratios, used when the "
        "detector gives no keypoints (the HOG fallback).",
    )
    blink_median_max_interval_s: float = Field(
        0.1,
        ge=0,
        le=10,
        description="The eye-openness series gets a three-frame median (one odd frame "
        "cannot fake a blink) only when samples come at most this far apart: at a "
        "slower camera a blink leaves a single closed frame (docs/door.md).",
    )
    min_yaw_change: float = Field(
        0.10, gt=0, le=1, description="Head-turn evidence: yaw ratio range in the window."
    )
    min_pitch_change: float = Field(
        0.08, gt=0, le=1, description="Nod evidence: pitch ratio range in the window."
    )
    min_presence: float = Field(
        0.5, ge=0, le=1, description="Mesh samples with lower face confidence are ignored."
    )

    @model_validator(mode="after")
    def _reopen_above_close(self) -> LivenessConfig:
        if self.blink_reopen_ratio <= self.blink_close_ratio:
            raise ValueError(
                f"blink_reopen_ratio ({self.blink_reopen_ratio}) must be above "
                f"blink_close_ratio ({self.blink_close_ratio})"
            )
        return self


class MatchConfig(StrictModel):
    """When a probe counts as a member."""

    threshold: float = Field(
        DEFAULT_THRESHOLD,
        gt=0,
        lt=2,
        description="Largest Euclidean distance to the member's nearest template.",
    )
    min_margin: float = Field(
        0.05,
        ge=0,
        lt=2,
        description="Second-best member must be at least this much farther than the best.",
    )


class AgreementConfig(StrictModel):
    """How many recent frames must agree on one member before a decision."""

    required: int = Field(3, ge=1, description="Frames that must name the same member (K).")
    window: int = Field(3, ge=1, description="Recent frames considered (N); K of the last N.")

    @model_validator(mode="after")
    def _window_holds_required(self) -> AgreementConfig:
        if self.window < self.required:
            raise ValueError(f"window ({self.window}) must be at least required ({self.required})")
        return self


class QualityConfig(StrictModel):
    """Thresholds of the enrollment quality gate."""

    min_face_px: int = Field(
        80, ge=16, le=4096, description="Smallest accepted face box side, in pixels."
    )
    min_sharpness: float = Field(
        40.0,
        ge=0,
        description="Lowest variance of the Laplacian of the face (128x128 grey) accepted.",
    )
    max_yaw_deg: float = Field(25.0, gt=0, le=90, description="Largest head yaw accepted.")
    max_roll_deg: float = Field(20.0, gt=0, le=90, description="Largest head roll accepted.")
    edge_margin_px: int = Field(
        2, ge=0, description="A face box this close to the image border counts as cut off."
    )


class WorkerConfig(StrictModel):
    """The inference worker process."""

    call_timeout_s: float = Field(
        10.0, gt=0, description="A frame not analysed in this time kills and restarts the worker."
    )
    start_timeout_s: float = Field(
        120.0, gt=0, description="Time allowed for the worker to load its models."
    )
    max_faces: int = Field(
        1, ge=1, description="Faces per frame that get the mesh (the largest one is embedded)."
    )
    num_jitters: int = Field(
        0, ge=0, le=10, description="dlib descriptor jitters (slower, a little more robust)."
    )
    mesh: bool = Field(True, description="Run the face mesh for liveness features.")
