"""Shared fixtures: real brokers, free ports, shared data, and a loop guard.

The loop guard runs every async test under blockbuster (tests/loop_guard.py):
a blocking call made on the event loop by project code fails the test with the
call and its stack, deterministically, at any machine load. It also fails a
test that left tasks running. Nothing here measures wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.loop_guard import LoopGuard
from tests.parts import missing

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


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
        if leaked:
            with contextlib.suppress(BaseException):
                await asyncio.gather(*leaked, return_exceptions=True)
    problems = []
    if leaked:
        problems.append("leaked tasks: " + ", ".join(sorted(_describe(t) for t in leaked)))
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
