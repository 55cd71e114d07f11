"""Owned tasks: a component that starts helper tasks watches them.

A helper task that ends (with an error, or returns when it should run
forever) must not go unnoticed: :func:`watch` waits on a component's tasks
and raises the first failure, so the component's own supervisor sees the
crash, logs it and restarts the component.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence


class TaskEnded(RuntimeError):
    """A helper task that should run until cancelled returned."""


async def watch(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Wait until one of ``tasks`` ends, then raise its error (or TaskEnded).

    Cancelling the caller does not cancel the tasks: their owner's stop()
    does that.
    """
    if not tasks:
        await asyncio.Event().wait()
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    task = next(iter(done))
    if task.cancelled():
        raise TaskEnded(f"task {task.get_name()} was cancelled")
    exc = task.exception()
    if exc is not None:
        raise exc
    raise TaskEnded(f"task {task.get_name()} ended")
