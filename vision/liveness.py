"""Liveness from face-mesh features over a time window: blinks and 3D head motion.

A photo held up to the camera -- shifted, zoomed, tilted in its plane, under
changing light -- keeps the same eye aspect ratio and the same yaw/pitch
ratios (see :mod:`vision.mesh`), so it shows neither a blink nor motion.
Thresholds are set well above the jitter measured on such a replay (yaw range
~0.045, eye-ratio dips to ~0.92 of baseline on a 30-frame jittered replay of a
dev photo).  Known limit: a video replay of a live face, or a photo bent or
turned in 3D, can show motion; this is presentation-attack *evidence*, not a
certified PAD.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from vision.config import LivenessConfig as LivenessConfig  # re-exported
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


def detect_blink(ear: np.ndarray, close_ratio: float, reopen_ratio: float) -> tuple[bool, float]:
    """(blinked, lowest ratio to baseline): a dip below close_ratio then a reopening."""
    if len(ear) < 3:
        return False, 1.0
    # The open-eye baseline is a high percentile: robust to the blink itself.
    baseline = float(np.percentile(ear, 80))
    if baseline <= 1e-6:
        return False, 1.0
    ratio = ear / baseline
    lowest = float(ratio.min())
    closed = np.flatnonzero(ratio < close_ratio)
    if not len(closed):
        return False, lowest
    reopened = ratio[closed[0] + 1 :] >= reopen_ratio
    return bool(reopened.any()), lowest


class LivenessTracker:
    """Feed it one :class:`MeshFeatures` per frame of the same face; ask for a verdict.

    Reset it when the face changes (another member steps up).
    """

    def __init__(self, config: LivenessConfig | None = None) -> None:
        self.config = config or LivenessConfig()
        self._samples: deque[tuple[float, MeshFeatures]] = deque()

    def reset(self) -> None:
        self._samples.clear()

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
        feats = [f for _, f in self._samples]
        ear = _median3(np.array([f.ear for f in feats]))
        yaw = _median3(np.array([f.yaw for f in feats]))
        pitch = _median3(np.array([f.pitch for f in feats]))
        blink, lowest = detect_blink(ear, cfg.blink_close_ratio, cfg.blink_reopen_ratio)
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
