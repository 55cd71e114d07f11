"""Group commit for the event loop: concurrent requests share one DB thread hop.

A ``Batcher`` runs a blocking ``run(items) -> outcomes`` on the thread pool
for every item queued while the previous call was in flight: the first item
starts a call at once (no added wait), the ones arriving meanwhile go
together in the next.  One thread hop and one set of round trips then serve
many requests, instead of each request taking its own hop (whose threads
also hold the GIL the event loop needs to answer; docs/benchmarks.md).

``run`` returns one outcome per item, in order: a value, or the exception
that item's caller gets.  A ``run`` that raises fails every item of its call.
A caller answers only when its own outcome is known, i.e. after ``run``
returned (for orders: after the batch's COMMIT).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741


class Batcher(Generic[I, O]):
    def __init__(
        self,
        run: Callable[[list[I]], Sequence[O | Exception]],
        executor: Executor,
        *,
        max_batch: int = 256,
        in_flight: int = 1,
    ) -> None:
        self._run, self._executor = run, executor
        self.max_batch, self.in_flight = max_batch, in_flight
        self._queue: list[tuple[I, asyncio.Future[O]]] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references
        self.batches = self.items = 0  # counters (tests, tuning)

    async def submit(self, item: I) -> O:
        future: asyncio.Future[O] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._running < self.in_flight:
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                self.batches, self.items = self.batches + 1, self.items + len(batch)
                try:
                    outcomes = await loop.run_in_executor(
                        self._executor, self._run, [item for item, _ in batch]
                    )
                    if len(outcomes) != len(batch):
                        raise RuntimeError(f"{len(outcomes)} outcomes for {len(batch)} items")
                except BaseException as exc:
                    for _, future in batch:
                        if future.done():
                            continue
                        if isinstance(exc, Exception):
                            future.set_exception(exc)
                        else:
                            future.cancel()
                    if not isinstance(exc, Exception):
                        raise  # cancelled (shutdown): the callers were told
                    continue
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue  # its caller went away (the work is done regardless)
                    if isinstance(outcome, Exception):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self._running -= 1
