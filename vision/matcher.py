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
        members, owner, counts = np.unique(ids, return_inverse=True, return_counts=True)
        self._members = members
        m, dim = len(members), mat.shape[1]
        # Slot-major layout: slot s holds every member's s-th template, one
        # contiguous block of m rows, so a member's nearest template is an
        # element-wise minimum over the slot blocks (np.minimum.reduceat over
        # per-member runs cost 15x more).  A member with fewer templates than
        # slots repeats its first one (the minimum is unchanged); templates beyond
        # the slots (a rare member with many) are matched apart, as overflow.
        slots = int(np.percentile(counts, 90, method="higher")) if m else 0
        order = np.argsort(owner, kind="stable")
        first = (np.cumsum(counts) - counts).astype(np.intp)
        rank = np.empty(len(ids), np.intp)
        rank[order] = np.arange(len(ids)) - np.repeat(first, counts)
        grid = np.empty((slots, m, dim), np.float32)
        grid[:] = mat[order[first]]  # each member's first template in every slot...
        kept = rank < slots
        grid[rank[kept], owner[kept]] = mat[kept]  # ...then its own where it has one
        self._slots = slots
        self._templates = grid.reshape(slots * m, dim)
        self._sq_norms = np.einsum("ij,ij->i", self._templates, self._templates)
        self._over = np.ascontiguousarray(mat[~kept])
        self._over_owner = owner[~kept].astype(np.intp)
        self._over_norms = np.einsum("ij,ij->i", self._over, self._over)
        # Work buffers, allocated once: a search allocates nothing the size of
        # the gallery (so one instance serves one thread at a time).
        self._probe2 = np.empty(dim, np.float32)
        self._per_template = np.empty(len(self._templates), np.float32)

    @property
    def member_count(self) -> int:
        return len(self._members)

    def _partial_sq(self, probe: FloatArray) -> tuple[FloatArray, float]:
        """Per member, min over its templates of |t|^2 - 2 t.p; and |p|^2.
        (|t - p|^2 = |t|^2 + |p|^2 - 2 t.p: one matrix-vector product for all.)"""
        p = np.asarray(probe, dtype=np.float32).reshape(-1)
        np.multiply(p, -2.0, out=self._probe2)
        per = self._per_template
        np.matmul(self._templates, self._probe2, out=per)
        per += self._sq_norms
        m = len(self._members)
        nearest = per[:m]  # slot 0, reduced in place over the other slots
        for s in range(1, self._slots):
            np.minimum(nearest, per[s * m : (s + 1) * m], out=nearest)
        if len(self._over):
            extra = self._over @ self._probe2 + self._over_norms
            np.minimum.at(nearest, self._over_owner, extra)
        return nearest, float(p @ p)

    def member_distances(self, probe: FloatArray) -> FloatArray:
        """Distance from ``probe`` to each member's nearest template (member order)."""
        partial, pp = self._partial_sq(probe)
        dist: FloatArray = np.sqrt(np.maximum(partial + pp, 0.0)).astype(np.float32)
        return dist

    def match(self, probe: FloatArray) -> MatchResult:
        if not self.member_count:
            return MatchResult(None, None, float("inf"), float("inf"), "no_templates")
        partial, pp = self._partial_sq(probe)
        # The two nearest members; square roots only for them.
        if len(partial) > 1:
            two = np.argpartition(partial, 1)[:2]
            best, second = (
                (two[0], two[1]) if partial[two[0]] <= partial[two[1]] else (two[1], two[0])
            )
            d2 = _root(partial[second] + pp)
        else:
            best, d2 = 0, float("inf")
        d = _root(partial[best] + pp)
        margin = d2 - d
        member = str(self._members[best])
        if d > self.config.threshold:
            return MatchResult(None, member, d, margin, "too_far")
        if margin < self.config.min_margin:
            return MatchResult(None, member, d, margin, "ambiguous")
        return MatchResult(member, member, d, margin, "match")


def _root(sq: float) -> float:
    return float(np.sqrt(np.float32(max(float(sq), 0.0))))


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
