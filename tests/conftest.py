"""Shared fixtures: real brokers, free ports, shared data, and a loop guard.

The loop guard runs every async test under blockbuster (tests/loop_guard.py):
a blocking call made on the event loop by project code fails the test with the
call and its stack, deterministically, at any machine load. It also fails a
test that left tasks running. Nothing here measures wall time.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import io
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.loop_guard import LoopGuard
from tests.parts import missing

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
# How long a leaked task gets to end after its cancel (an event, not a sleep).
LEAK_CANCEL_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_answers(host, port, 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} did not open in {timeout}s")


@dataclass
class Broker:
    host: str
    port: int


class MosquittoProcess:
    """A Mosquitto this test owns, on a free port, that can be stopped and restarted."""

    def __init__(self, tmp: Path) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            missing("Mosquitto")
        self.exe = exe
        self.host = "127.0.0.1"
        self.port = free_port()
        self.conf = tmp / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            # Without it Mosquitto holds small packets for Nagle (~40 ms each).
            "set_tcp_nodelay true\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def broker(self) -> Broker:
        return Broker(self.host, self.port)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.exe, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.host, self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoProcess]:
    """A private broker for tests that stop and restart it."""
    m = MosquittoProcess(tmp_path)
    m.start()
    try:
        yield m
    finally:
        m.stop()


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """The machine's Mosquitto on 127.0.0.1:1883 when it answers, else one we start."""
    if port_answers("127.0.0.1", 1883):
        yield Broker("127.0.0.1", 1883)
        return
    m = MosquittoProcess(tmp_path_factory.mktemp("mosquitto"))
    m.start()
    try:
        yield m.broker
    finally:
        m.stop()


@pytest.fixture
def shared_faces() -> Path:
    faces = SHARED / "faces"
    if not faces.is_dir():
        missing("../shared", f"no face photos at {faces}")
    return faces


def _describe(task: asyncio.Task[object]) -> str:
    coro = task.get_coro()
    return f"{task.get_name()} ({getattr(coro, '__qualname__', coro)})"


@pytest.fixture
async def loop_guard() -> AsyncIterator[None]:
    """Every async test: no blocking call on the loop from project code
    (tests/loop_guard.py) and no task left running afterwards."""
    with LoopGuard() as guard:
        yield
        # pytest-asyncio may run teardown in a task other than setup's.
        me = asyncio.current_task()
        # Give tasks a moment to finish their own cancellation.
        leaked: set[asyncio.Task[object]] = set()
        for _ in range(20):
            leaked = {t for t in asyncio.all_tasks() if t is not me and not t.done()}
            if not leaked:
                break
            await asyncio.sleep(0.05)
        for t in leaked:
            t.cancel()
        stuck: set[asyncio.Task[object]] = set()
        if leaked:
            # Bounded: a task that swallows its cancellation would otherwise
            # hang this teardown (and the whole CI run) with the loop idle.
            _, stuck = await asyncio.wait(leaked, timeout=LEAK_CANCEL_TIMEOUT_S)
    problems = []
    if leaked:
        problems.append("leaked tasks: " + ", ".join(sorted(_describe(t) for t in leaked)))
    for t in stuck:
        stack = io.StringIO()
        t.print_stack(file=stack)
        problems.append(f"task ignored its cancellation: {_describe(t)}\n{stack.getvalue()}")
    if (blocking := guard.report()) is not None:
        problems.append(blocking)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fn = getattr(item, "function", None)
        is_async = fn is not None and asyncio.iscoroutinefunction(fn)
        if is_async and "no_loop_guard" not in item.keywords:
            item.fixturenames.insert(0, "loop_guard")  # type: ignore[attr-defined]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "no_loop_guard: skip the blocking/leak guard")


def _await_chain(obj: Any) -> str:
    """Where a coroutine (or async generator) waits, innermost last."""
    lines = []
    while obj is not None:
        frame = getattr(obj, "cr_frame", None) or getattr(obj, "ag_frame", None)
        frame = frame or getattr(obj, "gi_frame", None)
        if frame is not None:
            lines.append(f"  {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        nxt = getattr(obj, "cr_await", None) or getattr(obj, "ag_await", None)
        obj = nxt or getattr(obj, "gi_yieldfrom", None)
    return "\n".join(lines)


def _asyncio_tasks_report() -> str:
    loop = asyncio._get_running_loop()
    if loop is None:
        return "no event loop was running"
    out = [
        f"--- task {_describe(t)}\n{_await_chain(t.get_coro())}" for t in asyncio.all_tasks(loop)
    ]
    # A fixture's teardown runs in an async generator, which a task's chain
    # does not reach through __anext__(): list the suspended ones too.
    gens = [g for g in gc.get_objects() if inspect.isasyncgen(g) and g.ag_await is not None]
    out += [f"--- async generator {g.ag_code.co_qualname}\n{_await_chain(g)}" for g in gens]
    return "\n".join(out)


@pytest.hookimpl(hookwrapper=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> Iterator[None]:
    """pytest-timeout's own timer, with its signal handler wrapped so the
    failure also says what every asyncio task was waiting on (a hung async
    teardown shows an idle loop in the thread dump, which names no fixture)."""
    yield
    inner = signal.getsignal(signal.SIGALRM)
    if settings.method != "signal" or not callable(inner):
        return

    def on_timeout(signum: int, frame: Any) -> None:
        __tracebackhide__ = True
        report = f"asyncio tasks of {item.nodeid}:\n{_asyncio_tasks_report()}"
        # Written at once (an xdist worker's stderr reaches the CI log) and
        # attached to the test's report: the failure pytest-timeout raises may
        # surface as a secondary error of another fixture's teardown.
        print(report, file=sys.__stderr__, flush=True)
        item.add_report_section("teardown", "pytest-timeout", report)
        inner(signum, frame)

    signal.signal(signal.SIGALRM, on_timeout)
