"""Liveness from face-mesh features over a time window: blinks and 3D head motion.

A photo held up to the camera -- shifted, zoomed, tilted in its plane, under
changing light -- keeps the same eye openness and the same yaw/pitch ratios
(see :mod:`vision.mesh`, :mod:`vision.eyes`), so it shows neither a blink nor
motion.  A print rocked or bent in 3D does show head "motion" (issue #14: up
to 7 of 7 curved prints rocked +-30 degrees unlocked on motion), and neither
the mesh's nose parallax nor texture flow separated rendered prints from the
live stand-ins (docs/door.md), so the default evidence is a blink, and a blink
only counts while the face keeps its shape (a rocked curved print can make
the lid gap dip).  This is presentation-attack *evidence* measured on rendered
attacks (bench/bench_vision_attacks.py), not a certified PAD; a video replay
of a blinking face is out of its scope.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from vision.config import CHALLENGES as CHALLENGES  # re-exported
from vision.config import Challenge as Challenge
from vision.config import LivenessConfig as LivenessConfig
from vision.config import LivenessMode as LivenessMode
from vision.mesh import MeshFeatures


@dataclass(frozen=True)
class LivenessVerdict:
    passed: bool
    blink: bool
    motion: bool
    samples: int
    yaw_range: float
    pitch_range: float
    min_ear_ratio: float  # lowest eye ratio over the baseline (1.0 = never closed)
    reason: str


def _median3(values: np.ndarray) -> np.ndarray:
    """Three-tap median: one outlier frame cannot fake a blink or a turn on its own."""
    if len(values) < 3:
        return values
    padded = np.concatenate([values[:1], values, values[-1:]])
    stacked = np.stack([padded[:-2], padded[1:-1], padded[2:]])
    return np.asarray(np.median(stacked, axis=0))


def detect_blink(
    ear: np.ndarray,
    close_ratio: float,
    reopen_ratio: float,
    pose: np.ndarray | None = None,
    max_pose_change: float = float("inf"),
) -> tuple[bool, float]:
    """(blinked, lowest ratio to baseline): a dip below close_ratio then a reopening.

    ``pose``: (n, k) of the same samples, what must stay put (the face's shape,
    or the mesh's yaw and pitch).  A dip only counts while every column stays
    within ``max_pose_change`` from the last open sample before it to the
    reopening: eyes close and open in a still face, while a print rocked or
    bent changes the lid gap it shows together with its pose.
    """
    if len(ear) < 3:
        return False, 1.0
    # The open-eye baseline is a high percentile: robust to the blink itself.
    baseline = float(np.percentile(ear, 80))
    if baseline <= 1e-6:
        return False, 1.0
    ratio = ear / baseline
    lowest = float(ratio.min())
    i, n = 0, len(ratio)
    while i < n:
        if ratio[i] >= close_ratio:
            i += 1
            continue
        reopened = np.flatnonzero(ratio[i + 1 :] >= reopen_ratio)
        if not len(reopened):
            return False, lowest  # closed and not (yet) open again
        end = i + 1 + int(reopened[0])
        opened_before = np.flatnonzero(ratio[:i] >= reopen_ratio)
        start = int(opened_before[-1]) if len(opened_before) else i
        if pose is None or float(np.ptp(pose[start : end + 1], axis=0).max()) <= max_pose_change:
            return True, lowest
        i = end + 1  # that dip came with a pose change: look for another
    return False, lowest


class LivenessTracker:
    """Feed it one :class:`MeshFeatures` per frame of the same face; ask for a verdict.

    Reset it when the face changes (another member steps up).
    """

    def __init__(self, config: LivenessConfig | None = None) -> None:
        self.config = config or LivenessConfig()
        self._samples: deque[tuple[float, MeshFeatures]] = deque()
        self.challenge: Challenge | None = None
        self._challenge_at = 0.0

    def reset(self) -> None:
        self._samples.clear()
        self.challenge = None

    def start_challenge(self, challenge: Challenge, at: float) -> None:
        """ "challenge" mode: from ``at`` on, only this evidence counts."""
        self.challenge, self._challenge_at = challenge, at

    def add(self, ts: float, features: MeshFeatures) -> None:
        if features.presence >= self.config.min_presence:
            self._samples.append((ts, features))
        self._expire(ts)

    def _expire(self, now: float) -> None:
        while self._samples and self._samples[0][0] < now - self.config.window_s:
            self._samples.popleft()

    def verdict(self, now: float | None = None) -> LivenessVerdict:
        cfg = self.config
        if now is not None:
            self._expire(now)
        n = len(self._samples)
        if cfg.mode == "off":
            return LivenessVerdict(True, False, False, n, 0.0, 0.0, 1.0, "liveness off")
        if n < cfg.min_samples:
            return LivenessVerdict(
                False, False, False, n, 0.0, 0.0, 1.0, f"{n} of {cfg.min_samples} samples"
            )
        if cfg.mode == "challenge":
            return self._challenge_verdict(n)
        feats = [f for _, f in self._samples]
        # The iris model's lid gap follows the lids; the mesh's eye ratio hardly does.
        ear = self._lids([ts for ts, _ in self._samples], feats)
        yaw = _median3(np.array([f.yaw for f in feats]))
        pitch = _median3(np.array([f.pitch for f in feats]))
        pose, limit = self._steadiness(feats)
        blink, lowest = detect_blink(
            ear, cfg.blink_close_ratio, cfg.blink_reopen_ratio, pose, limit
        )
        yaw_range, pitch_range = float(np.ptp(yaw)), float(np.ptp(pitch))
        motion = yaw_range >= cfg.min_yaw_change or pitch_range >= cfg.min_pitch_change
        passed = {
            "blink": blink,
            "motion": motion,
            "blink_or_motion": blink or motion,
            "blink_and_motion": blink and motion,
        }[cfg.mode]
        reason = "live" if passed else f"missing evidence for {cfg.mode}"
        return LivenessVerdict(passed, blink, motion, n, yaw_range, pitch_range, lowest, reason)

    def _steadiness(self, feats: list[MeshFeatures]) -> tuple[np.ndarray, float]:
        """What must stay put during a blink, and by how much: the face's shape from
        the detector's keypoints, or without them the mesh's yaw and pitch."""
        shapes = [f.shape for f in feats]
        if all(s is not None for s in shapes):
            return np.array(shapes, dtype=float)[:, None], self.config.blink_max_shape_change
        pose = np.column_stack([[f.yaw for f in feats], [f.pitch for f in feats]])
        return pose, self.config.blink_max_pose_change

    def _lids(self, times: list[float], feats: list[MeshFeatures]) -> np.ndarray:
        """The eye-openness series, median-filtered only when the samples are dense
        (``blink_median_max_interval_s``): at 5 fps a blink leaves one closed
        sample, which a three-tap median would remove by design."""
        has_openness = all(f.openness is not None for f in feats)
        ear = np.array([f.openness if has_openness else f.ear for f in feats])
        interval = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
        return _median3(ear) if interval <= self.config.blink_median_max_interval_s else ear

    def _challenge_verdict(self, n: int) -> LivenessVerdict:
        cfg = self.config
        times = [ts for ts, _ in self._samples if ts >= self._challenge_at]
        feats = [f for ts, f in self._samples if ts >= self._challenge_at]
        if self.challenge is None or len(feats) < 3:
            return LivenessVerdict(False, False, False, n, 0.0, 0.0, 1.0, "awaiting challenge")
        yaw = _median3(np.array([f.yaw for f in feats]))
        turn = float(yaw.max() - yaw[0]), float(yaw[0] - yaw.min())  # to their left, right
        blink = lowest = None
        if self.challenge == "blink":
            ear = self._lids(times, feats)
            pose, limit = self._steadiness(feats)
            blink, lowest = detect_blink(
                ear, cfg.blink_close_ratio, cfg.blink_reopen_ratio, pose, limit
            )
            passed = blink
        else:
            passed = turn[0 if self.challenge == "turn_left" else 1] >= cfg.min_yaw_change
        reason = "live" if passed else f"challenge {self.challenge} not seen"
        return LivenessVerdict(
            passed, bool(blink), self.challenge != "blink" and passed, n,
            float(np.ptp(yaw)), 0.0, 1.0 if lowest is None else lowest, reason,
        )  # fmt: skip
