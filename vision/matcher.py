"""1:N matching over every enrolled template, and agreement across frames.

Default threshold (Euclidean distance between dlib descriptors): 0.55.
dlib's usual 0.6 was the starting point; bench/bench_vision_quality.py on the
dev photos (14 genuine, 91 impostor pairs) gives genuine distances up to 0.52
and impostor distances from 0.70.  0.55 sits just above the worst genuine pair
and far below the closest impostor: a door prefers a second look over a
stranger inside, and ``FrameAgreement`` gives the genuine member that second
look for free.  Re-run the bench on real door-camera photos before changing it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vision.config import AgreementConfig as AgreementConfig  # re-exported
from vision.config import MatchConfig as MatchConfig

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class MatchResult:
    member_id: str | None  # the accepted member, None when rejected
    best_member: str | None  # nearest member even when rejected (for logs)
    distance: float  # to the nearest template of best_member (inf if none enrolled)
    margin: float  # second-best member's distance minus distance (inf if one member)
    reason: str  # "match", "no_templates", "too_far", "ambiguous"

    @property
    def accepted(self) -> bool:
        return self.member_id is not None


class Matcher:
    """Vectorised nearest-member search; build once per template set, query per frame."""

    def __init__(
        self,
        member_ids: Sequence[str] | npt.NDArray[np.str_],
        templates: FloatArray,
        config: MatchConfig | None = None,
    ) -> None:
        self.config = config or MatchConfig()
        ids = np.asarray(member_ids, dtype=str)
        mat = np.asarray(templates, dtype=np.float32)
        if mat.ndim != 2 or len(mat) != len(ids):
            raise ValueError(
                f"templates: expected one row per member id ({len(ids)}), got shape {mat.shape}"
            )
        # Group each member's templates together so reduceat gives a per-member minimum.
        order = np.argsort(ids, kind="stable")
        self._templates = np.ascontiguousarray(mat[order])
        self._sq_norms = np.einsum("ij,ij->i", self._templates, self._templates)
        sorted_ids = ids[order]
        if len(sorted_ids):
            self._members, self._starts = np.unique(sorted_ids, return_index=True)
        else:
            self._members, self._starts = np.array([], dtype=str), np.array([], dtype=np.intp)

    @property
    def member_count(self) -> int:
        return len(self._members)

    def member_distances(self, probe: FloatArray) -> FloatArray:
        """Distance from ``probe`` to each member's nearest template (member order)."""
        p = np.asarray(probe, dtype=np.float32).reshape(-1)
        # |t - p|^2 = |t|^2 + |p|^2 - 2 t.p, one matrix-vector product for all templates.
        sq = self._sq_norms + float(p @ p) - 2.0 * (self._templates @ p)
        per_member = np.minimum.reduceat(sq, self._starts)
        dist: FloatArray = np.sqrt(np.maximum(per_member, 0.0)).astype(np.float32)
        return dist

    def match(self, probe: FloatArray) -> MatchResult:
        if not self.member_count:
            return MatchResult(None, None, float("inf"), float("inf"), "no_templates")
        dist = self.member_distances(probe)
        if len(dist) > 1:
            two = np.argpartition(dist, 1)[:2]
            best, second = (two[0], two[1]) if dist[two[0]] <= dist[two[1]] else (two[1], two[0])
            margin = float(dist[second] - dist[best])
        else:
            best, margin = 0, float("inf")
        member = str(self._members[best])
        d = float(dist[best])
        if d > self.config.threshold:
            return MatchResult(None, member, d, margin, "too_far")
        if margin < self.config.min_margin:
            return MatchResult(None, member, d, margin, "ambiguous")
        return MatchResult(member, member, d, margin, "match")


class FrameAgreement:
    """K of the last N frames must name the same member; a rejected frame votes for nobody.

    With required == window this is "K consecutive frames".
    """

    def __init__(self, config: AgreementConfig | None = None) -> None:
        self.config = config or AgreementConfig()
        self._votes: deque[str | None] = deque(maxlen=self.config.window)

    def push(self, member_id: str | None) -> str | None:
        """Record one frame's accepted member (or None); returns the agreed member, if any."""
        self._votes.append(member_id)
        counts: dict[str, int] = {}
        for vote in self._votes:
            if vote is not None:
                counts[vote] = counts.get(vote, 0) + 1
        agreed = [m for m, c in counts.items() if c >= self.config.required]
        return agreed[0] if len(agreed) == 1 else None

    def reset(self) -> None:
        self._votes.clear()
