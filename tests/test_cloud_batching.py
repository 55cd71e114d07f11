"""cloud_api.batching.Batcher: what queues while a call is in flight goes in the next call,
with no added wait; each item gets its own outcome; a failing call fails its items only."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from cloud_api.batching import Batcher


async def test_items_queued_while_a_call_runs_go_together() -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[list[int]] = []

    def run(items: list[int]) -> list[int | Exception]:
        calls.append(items)
        if len(calls) == 1:
            started.set()
            release.wait(10)
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]

    with ThreadPoolExecutor(2) as pool:
        b: Batcher[int, int] = Batcher(run, pool)
        first = asyncio.ensure_future(b.submit(0))
        assert await asyncio.to_thread(started.wait, 10)  # the first call: at once, alone
        rest = [asyncio.ensure_future(b.submit(i)) for i in range(1, 6)]
        await asyncio.sleep(0)  # one turn of the loop: the five queue behind the first call
        release.set()
        assert await first == 0
        outcomes = await asyncio.gather(*rest, return_exceptions=True)
    assert calls == [[0], [1, 2, 3, 4, 5]]
    assert [o if isinstance(o, int) else str(o) for o in outcomes] == [
        "odd 1", 20, "odd 3", 40, "odd 5",
    ]  # fmt: skip
    assert (b.batches, b.items) == (2, 6)


async def test_a_call_that_raises_fails_its_items_and_the_next_call_runs() -> None:
    def run(items: list[str]) -> list[str | Exception]:
        if "boom" in items:
            raise RuntimeError("database away")
        return [s.upper() for s in items]

    with ThreadPoolExecutor(1) as pool:
        b: Batcher[str, str] = Batcher(run, pool)
        with pytest.raises(RuntimeError, match="database away"):
            await b.submit("boom")
        assert await b.submit("ok") == "OK"
