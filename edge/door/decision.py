"""From analysed frames to a door attempt: match, agreement, liveness.  No I/O.

One face at a time (the largest).  The matcher names a member per frame; K of
the last N frames must agree (:class:`vision.matcher.FrameAgreement`); then
liveness evidence must pass within ``decision_window_s`` of that agreement.
A face the matcher keeps rejecting for ``unknown_frames`` frames is a failed
attempt.  After an outcome the decider forgets everything (a new attempt
starts from scratch), so one still photo can never accumulate into a pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from vision.liveness import LivenessConfig, LivenessTracker, LivenessVerdict
from vision.matcher import AgreementConfig, FrameAgreement, Matcher, MatchResult
from vision.pipeline import FrameResult

# Without a face for this long, the person has gone: liveness evidence is dropped.
FACE_GAP_S = 1.5


@dataclass(frozen=True)
class Attempt:
    """The outcome of one attempt; the service checks the member and opens the door."""

    passed: bool  # recognised and live
    reason: str  # recognised | unknown_face | liveness_failed
    member_id: str | None
    distance: float | None
    margin: float | None
    liveness: LivenessVerdict | None
    latency_ms: dict[str, float] = field(default_factory=dict)


def verdict_summary(v: LivenessVerdict | None) -> dict[str, object] | None:
    """The liveness verdict as stored on a door event (scalars only)."""
    if v is None:
        return None
    return {
        "passed": v.passed,
        "blink": v.blink,
        "motion": v.motion,
        "samples": v.samples,
        "yaw_range": round(v.yaw_range, 4),
        "pitch_range": round(v.pitch_range, 4),
        "reason": v.reason,
    }


class DoorDecider:
    def __init__(
        self,
        matcher: Matcher,
        agreement: AgreementConfig,
        liveness: LivenessConfig,
        decision_window_s: float,
        unknown_frames: int,
    ) -> None:
        self.matcher = matcher
        self.agreement = FrameAgreement(agreement)
        self.liveness = LivenessTracker(liveness)
        self.decision_window_s = decision_window_s
        self.unknown_frames = unknown_frames
        self._agreed: str | None = None
        self._agreed_at = 0.0
        self._best: MatchResult | None = None
        self._rejected = 0
        self._last_face_ts = 0.0

    def reset(self) -> None:
        self.agreement.reset()
        self.liveness.reset()
        self._agreed = None
        self._best = None
        self._rejected = 0

    def feed(self, result: FrameResult, now: float | None = None) -> Attempt | None:
        """One analysed frame; returns an attempt outcome, or None while undecided."""
        ts = result.ts or time.time()
        now = ts if now is None else now
        face = next((f for f in result.faces if f.embedding is not None), None)
        if face is None or face.embedding is None:
            if now - self._last_face_ts > FACE_GAP_S:
                self.reset()
            else:
                self.agreement.push(None)
            return None
        self._last_face_ts = now
        t0 = time.perf_counter()
        match = self.matcher.match(face.embedding.vector)
        match_ms = (time.perf_counter() - t0) * 1e3
        if face.mesh is not None:
            self.liveness.add(ts, face.mesh)
        agreed = self.agreement.push(match.member_id)
        if match.accepted:
            self._rejected = 0
            best = self._best
            if best is None or match.member_id != best.member_id or match.distance < best.distance:
                self._best = match
        else:
            self._rejected += 1
        latency = {**result.latency_ms, "match": match_ms}
        if agreed is not None and agreed != self._agreed:
            if self._agreed is not None:
                self.liveness.reset()  # another member stepped up
            self._agreed, self._agreed_at = agreed, now
        if self._agreed is not None:
            t1 = time.perf_counter()
            verdict = self.liveness.verdict(now)
            latency["liveness"] = (time.perf_counter() - t1) * 1e3
            best = self._best
            if verdict.passed:
                outcome = Attempt(
                    True,
                    "recognised",
                    self._agreed,
                    best.distance if best else None,
                    best.margin if best else None,
                    verdict,
                    latency,
                )
                self.reset()
                return outcome
            if now - self._agreed_at > self.decision_window_s:
                outcome = Attempt(
                    False,
                    "liveness_failed",
                    self._agreed,
                    best.distance if best else None,
                    best.margin if best else None,
                    verdict,
                    latency,
                )
                self.reset()
                return outcome
            return None
        if self._rejected >= self.unknown_frames:
            outcome = Attempt(
                False, "unknown_face", None, match.distance, match.margin, None, latency
            )
            self.reset()
            return outcome
        return None
