"""Deterministic detection of blocking calls on the event loop.

`blockbuster` wraps the blocking primitives (file and socket I/O on blocking
descriptors, ``time.sleep``, ``sqlite3`` calls, lock waits, ``os.waitpid``…)
and raises when one is called from the thread running an event loop with a
frame of the project's own packages on the stack. That is a property of the
code, not of timing: the same test fails the same way on an idle laptop and on
a loaded 2-core CI machine.

Product code may catch the raised error (a task that logs and carries on), so
the guard also *records* every detection and the test fails at teardown with
the offending call and its stack, whatever the code did with the exception.

What counts is the project's code run *by the loop*: the nearest coroutine on
the stack is the project's (or there is none: a callback the loop called). A
test's own coroutine calling a synchronous project function directly (setting
up a shop, reading the cloud's database to check it) stands for another thread
or process and is left alone; the same call made by an awaited project
coroutine is caught.
"""

from __future__ import annotations

import inspect
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import blockbuster.blockbuster as bb

# The packages whose blocking calls on the loop are bugs. Tests and libraries
# are not scanned on their own; a library call made *from* project code is.
PROJECT_PACKAGES = ["edge", "drivers", "vision", "sync", "cloud_api"]

# Where a blocking call on the loop is accepted, each with its reason. Keep it
# short: everything else is fixed in the product instead.
ALLOWED = [
    (
        "edge/api/app.py",
        "create_app",
        "aiohttp's add_static resolves the page folder once, while the app is built",
    ),
    (
        "logging/__init__.py",
        "emit",
        "pytest's own log handlers (one writes to /dev/null); the daemon logs through a"
        " queue to a writer thread (edge.ops.logging.setup_logging)",
    ),
]

TESTS_DIR = str(Path(__file__).resolve().parent) + "/"
_REPO = Path(__file__).resolve().parent.parent
PROJECT_DIRS = tuple(f"{_REPO / package}/" for package in PROJECT_PACKAGES)
_ASYNC_CODE = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE


def called_from_test_coroutine() -> bool:
    """A test's coroutine called a synchronous project function which made
    the blocking call: the nearest coroutine frame on the stack is a test's,
    with project frames between it and the call. (A blocking call written in
    the test itself, or in project coroutines, is not this.)"""
    frame = sys._getframe(1)
    through_project = False
    while frame is not None:
        filename = frame.f_code.co_filename
        if frame.f_code.co_flags & _ASYNC_CODE:
            return filename.startswith(TESTS_DIR) and through_project
        if filename.startswith(PROJECT_DIRS):
            through_project = True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _unless_test_scaffolding(predicate: Callable[..., bool]) -> Callable[..., bool]:
    def allowed(*args: object, **kwargs: object) -> bool:
        return predicate(*args, **kwargs) or called_from_test_coroutine()

    return allowed


# Frames of the test machinery, left out of the reported stack.
_NOISE = ("/_pytest/", "/pluggy/", "/pytest_asyncio/", "/asyncio/")

# Blocking primitives blockbuster does not wrap by itself.
EXTRA_FUNCTIONS = ["os.waitpid", "os.fsync", "os.fdatasync"]


@dataclass(frozen=True)
class BlockingCall:
    function: str
    stack: str

    def describe(self) -> str:
        return f"blocking call to {self.function} on the event loop, from:\n{self.stack}"


class LoopGuard:
    """Blockbuster on :data:`PROJECT_PACKAGES` while active; ``calls`` lists
    every blocking call it caught."""

    def __init__(self) -> None:
        self.calls: list[BlockingCall] = []
        self._buster: bb.BlockBuster | None = None
        self._original_error: type[bb.BlockingError] | None = None

    def __enter__(self) -> LoopGuard:
        calls = self.calls
        original = bb.BlockingError

        class RecordedBlockingError(original):  # type: ignore[misc, valid-type]
            def __init__(self, func: str) -> None:
                super().__init__(func)
                # Drop this frame and blockbuster's wrapper: the stack ends at the call.
                frames = traceback.format_stack()[:-2]
                shown = [f for f in frames if not any(n in f for n in _NOISE)]
                calls.append(BlockingCall(func, "".join(shown[-20:])))

        self._original_error = original
        bb.BlockingError = RecordedBlockingError  # type: ignore[misc]
        buster = bb.BlockBuster(PROJECT_PACKAGES)
        for name in EXTRA_FUNCTIONS:
            buster.functions[name] = bb.BlockBusterFunction(
                None, name, scanned_modules=PROJECT_PACKAGES
            )
        for wrapped in buster.functions.values():
            for filename, function, _reason in ALLOWED:
                wrapped.can_block_in(filename, function)
            wrapped.can_block_predicate = _unless_test_scaffolding(wrapped.can_block_predicate)
        buster.activate()
        self._buster = buster
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._buster is not None:
            self._buster.deactivate()
            self._buster = None
        if self._original_error is not None:
            bb.BlockingError = self._original_error  # type: ignore[misc]
            self._original_error = None

    def report(self) -> str | None:
        if not self.calls:
            return None
        first = self.calls[0].describe()
        more = len(self.calls) - 1
        return first + (f"\n(and {more} more blocking calls)" if more else "")
