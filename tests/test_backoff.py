"""The one shared backoff: capped, jittered, and finite for any failure count."""

from __future__ import annotations

import math
import random

from drivers.backoff import Backoff, backoff_delay, capped_exponential


def test_ten_thousand_failures_never_overflow_and_stay_capped() -> None:
    rng = random.Random(7)
    backoff = Backoff(base_s=0.1, cap_s=30.0, rng=rng)
    delays = [backoff.failed() for _ in range(10_000)]
    assert backoff.attempt == 10_000
    assert all(math.isfinite(d) and 0.0 <= d <= 30.0 for d in delays)
    # Late failures still wait a real, jittered time (not stuck at 0 or one value).
    late = delays[-1000:]
    assert max(late) > 25.0 and min(late) < 5.0, (min(late), max(late))


def test_delay_grows_then_caps_and_respects_a_floor() -> None:
    rng = random.Random(1)
    caps = [max(backoff_delay(a, 0.5, 8.0, rng) for _ in range(300)) for a in range(8)]
    assert caps[0] <= 0.5 and caps[1] <= 1.0 and caps[2] <= 2.0
    assert caps[2] > caps[0]
    assert all(c <= 8.0 for c in caps) and caps[-1] > 7.0
    floored = [backoff_delay(50_000, 1.0, 4.0, rng, floor_s=1.0) for _ in range(300)]
    assert all(1.0 <= d <= 4.0 for d in floored)


def test_capped_exponential_is_deterministic_and_finite() -> None:
    assert capped_exponential(0, 1.0, 60.0) == 1.0
    assert capped_exponential(3, 1.0, 60.0) == 8.0
    assert capped_exponential(10**9, 1.0, 60.0) == 60.0


def test_success_starts_over() -> None:
    backoff = Backoff(base_s=1.0, cap_s=100.0, rng=random.Random(3))
    for _ in range(20):
        backoff.failed()
    backoff.succeeded()
    assert backoff.attempt == 0
    assert backoff.failed() <= 2.0


async def test_watch_raises_a_dead_helper_task_so_its_owner_restarts() -> None:
    import asyncio

    import pytest

    from drivers.tasks import TaskEnded, watch

    async def crash() -> None:
        raise ValueError("link task died")

    async def forever() -> None:
        await asyncio.Event().wait()

    async def returns() -> None:
        return None

    helpers = [asyncio.create_task(forever(), name="ok"), asyncio.create_task(crash(), name="bad")]
    with pytest.raises(ValueError, match="link task died"):
        await asyncio.wait_for(watch(helpers), 5)
    ended = [asyncio.create_task(returns(), name="quitter")]
    with pytest.raises(TaskEnded, match="quitter"):
        await asyncio.wait_for(watch(ended), 5)
    helpers[0].cancel()
    await asyncio.gather(*helpers, return_exceptions=True)
