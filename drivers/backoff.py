"""The one retry delay of the code base: capped, jittered, never overflowing.

Every reconnect, re-poll, reopen and restart loop in the project asks this
module how long to wait before retry number ``attempt``.  The delay is drawn
uniformly from ``[floor_s, min(cap_s, base_s * 2**attempt)]`` ("full
jitter", so a site's clients do not retry in lockstep after a broker or
gateway comes back).  The exponent is clamped before it is used, so a
component that has failed for weeks (attempt in the millions) still gets a
finite, capped delay instead of an ``OverflowError``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

# 2**64 * any sane base is already far past any cap; a larger exponent only
# risks float overflow and buys nothing.
_MAX_EXPONENT = 64


def capped_exponential(attempt: int, base_s: float, cap_s: float) -> float:
    """``min(cap_s, base_s * 2**attempt)`` without jitter, for any ``attempt`` >= 0."""
    if attempt <= 0:
        return min(cap_s, base_s)
    return min(cap_s, math.ldexp(base_s, min(attempt, _MAX_EXPONENT)))


def backoff_delay(
    attempt: int,
    base_s: float,
    cap_s: float,
    rng: random.Random | None = None,
    *,
    floor_s: float = 0.0,
) -> float:
    """A random delay in ``[floor_s, min(cap_s, base_s * 2**attempt)]`` seconds."""
    high = max(floor_s, capped_exponential(attempt, base_s, cap_s))
    return (rng or random).uniform(floor_s, high)


@dataclass
class Backoff:
    """A retry counter with its delay policy: ``failed()`` counts a failure and
    returns how long to wait; ``succeeded()`` starts over."""

    base_s: float
    cap_s: float
    floor_s: float = 0.0
    rng: random.Random | None = None
    attempt: int = 0

    def failed(self) -> float:
        self.attempt += 1
        return backoff_delay(self.attempt, self.base_s, self.cap_s, self.rng, floor_s=self.floor_s)

    def succeeded(self) -> None:
        self.attempt = 0
