"""From analysed frames to a door attempt: match, agreement, liveness.  No I/O.

One face at a time (the largest), followed as a track from frame to frame (its
box must overlap the previous one; a jump means somebody else and starts over).
Every frame feeds liveness (the mesh runs at camera rate); only frames the
decider asks to have embedded (:meth:`DoorDecider.wants_embedding`: until K
embedded frames agree) carry a 1:N match, computed in the worker process.  K of
the last N embedded frames must agree (:class:`vision.matcher.FrameAgreement`);
then liveness evidence must pass within ``decision_window_s`` of that
agreement.  When a challenge is wanted at that moment (``wants_challenge``:
the door's security schedule, or ``[door.liveness] mode = "challenge"``), a
prompt is drawn for the door display and the evidence asked for, seen after
the prompt, must pass as well as the door's passive liveness.  A face the
matcher keeps rejecting for ``unknown_frames`` embedded frames is a failed
attempt.  After an outcome the decider forgets everything
(a new attempt starts from scratch), so one still photo can never accumulate
into a pass.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vision.liveness import CHALLENGES, LivenessConfig, LivenessTracker, LivenessVerdict
from vision.matcher import AgreementConfig, FrameAgreement, Matcher, MatchResult
from vision.pipeline import FaceAnalysis, FrameResult

_random = random.SystemRandom()  # a challenge nobody can predict from earlier ones
# Without a face for this long, the person has gone: liveness evidence is dropped.
FACE_GAP_S = 1.5
# The largest face must overlap the previous frame's this much to be the same track.
TRACK_MIN_IOU = 0.3


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


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
        matcher: Matcher | None,
        agreement: AgreementConfig,
        liveness: LivenessConfig,
        decision_window_s: float,
        unknown_frames: int,
    ) -> None:
        self.matcher = matcher
        self.agreement = FrameAgreement(agreement)
        self.liveness = LivenessTracker(liveness)
        # The challenge asked on top of the passive liveness (a scheduled challenge);
        # with liveness mode "challenge" the tracker above is the challenge itself.
        self._asked = LivenessTracker(liveness.model_copy(update={"mode": "challenge"}))
        self.wants_challenge: Callable[[], bool] = lambda: False
        self.decision_window_s = decision_window_s
        self.unknown_frames = unknown_frames
        self._agreed: str | None = None
        self._agreed_at = 0.0
        self._best: MatchResult | None = None
        self._rejected = 0
        self._last_face_ts = 0.0
        self._last_box: tuple[float, float, float, float] | None = None
        self._track_start = -1  # frame seq where the current track began
        # "challenge" mode: what the door display should ask for, until the service takes it.
        self.prompt: str | None = None

    def take_prompt(self) -> str | None:
        prompt, self.prompt = self.prompt, None
        return prompt

    def reset(self) -> None:
        self.prompt = None
        self.agreement.reset()
        self.liveness.reset()
        self._asked.reset()
        self._agreed = None
        self._best = None
        self._rejected = 0
        self._last_box = None

    @property
    def track_box(self) -> tuple[float, float, float, float] | None:
        """The followed face's last box (the embedding worker embeds the face there)."""
        return self._last_box

    def _followed(self, result: FrameResult) -> FaceAnalysis | None:
        """The face continuing the current track, else the largest face.  Two people
        of about the same size must not swap the track from frame to frame."""
        if not result.faces:
            return None
        if self._last_box is not None:
            last = self._last_box
            best = max(result.faces, key=lambda f: box_iou(last, f.detection.box))
            if box_iou(last, best.detection.box) >= TRACK_MIN_IOU:
                return best
        return result.faces[0]

    def wants_embedding(self) -> bool:
        """Embed the next frame?  Only until the track's member is agreed: after
        that, frames only add liveness evidence until the decision."""
        return self._agreed is None

    def feed(self, result: FrameResult, now: float | None = None) -> Attempt | None:
        """One analysed frame (mesh, and a match if it was embedded); returns an
        attempt outcome, or None while undecided."""
        ts = result.ts or time.time()
        now = ts if now is None else now
        face = self._followed(result)
        if face is None:
            if now - self._last_face_ts > FACE_GAP_S:
                self.reset()
            return None
        box = face.detection.box
        if self._last_box is not None and box_iou(self._last_box, box) < TRACK_MIN_IOU:
            self.reset()  # somebody else (or a jump no head makes): a new attempt
        if self._last_box is None:
            self._track_start = result.seq
        self._last_box = box
        self._last_face_ts = now
        if face.mesh is not None:
            self.liveness.add(ts, face.mesh)
            if self._asked.challenge is not None:
                self._asked.add(ts, face.mesh)
        latency = dict(result.latency_ms)
        match = face.match
        if match is None and face.embedding is not None and self.matcher is not None:
            t0 = time.perf_counter()
            match = self.matcher.match(face.embedding.vector)
            latency["match"] = (time.perf_counter() - t0) * 1e3
        if match is not None:
            self._vote(match, now)
        return self._decide(now, latency, match)

    def feed_match(self, result: FrameResult, now: float) -> Attempt | None:
        """An embedded frame analysed alongside the mesh frames (a second worker):
        its match votes for the current track if it is of the same face, taken
        since the track began; its mesh is not used (the mesh frames carry it)."""
        face = self._followed(result)
        if face is None or face.match is None or self._last_box is None:
            return None
        if result.seq < self._track_start or box_iou(self._last_box, face.detection.box) < (
            TRACK_MIN_IOU
        ):
            return None  # a frame of an earlier track, or of somebody else
        self._vote(face.match, now)
        return self._decide(now, dict(result.latency_ms), face.match)

    def _vote(self, match: MatchResult, now: float) -> None:
        agreed = self.agreement.push(match.member_id)
        if match.accepted:
            self._rejected = 0
            best = self._best
            if best is None or match.member_id != best.member_id or match.distance < best.distance:
                self._best = match
        else:
            self._rejected += 1
        if agreed is not None and agreed != self._agreed:
            if self._agreed is not None:
                self.liveness.reset()  # another member stepped up
                self._asked.reset()
            self._agreed, self._agreed_at = agreed, now
            if self.liveness.config.mode == "challenge":
                challenge = _random.choice(CHALLENGES)
                self.liveness.start_challenge(challenge, now)
                self.prompt = challenge
            elif self.wants_challenge():
                challenge = _random.choice(CHALLENGES)
                self._asked.start_challenge(challenge, now)
                self.prompt = challenge

    def _verdict(self, now: float) -> LivenessVerdict:
        """The passive liveness verdict, and the challenge's when one was asked."""
        verdict = self.liveness.verdict(now)
        if self._asked.challenge is None:
            return verdict
        asked = self._asked.verdict(now)
        passed = verdict.passed and asked.passed
        reason = verdict.reason if not verdict.passed else asked.reason
        return dataclasses.replace(verdict, passed=passed, reason=reason)

    def _decide(
        self, now: float, latency: dict[str, float], match: MatchResult | None
    ) -> Attempt | None:
        if self._agreed is not None:
            t1 = time.perf_counter()
            verdict = self._verdict(now)
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
        if match is not None and self._rejected >= self.unknown_frames:
            outcome = Attempt(
                False, "unknown_face", None, match.distance, match.margin, None, latency
            )
            self.reset()
            return outcome
        return None
