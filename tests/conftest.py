"""Shared fixtures: real brokers, free ports, shared data, and a loop guard.

The loop guard runs every async test with asyncio debug mode on and fails the
test when a callback blocked the event loop (asyncio logs "Executing ... took")
or when the test left tasks running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"

# A callback holding the loop longer than this is a blocking call.  Wall time,
# so it includes the OS preempting us: on a loaded 2-core machine (a vision
# worker process loading its models beside the test) a harmless step can take
# ~0.3 s; a real blocking call (sync I/O, inference on the loop) takes longer.
BLOCKING_THRESHOLD_S = 0.5


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
            pytest.skip("mosquitto is not installed (make system-deps installs it)")
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
        pytest.skip(f"shared face photos not found at {faces} (../shared is absent)")
    return faces


class _BlockingDetector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if msg.startswith("Executing ") and " took " in msg:
            self.messages.append(msg)


@pytest.fixture
async def loop_guard() -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = BLOCKING_THRESHOLD_S
    detector = _BlockingDetector()
    asyncio_logger = logging.getLogger("asyncio")
    asyncio_logger.addHandler(detector)
    try:
        yield
    finally:
        # pytest-asyncio may run teardown in a task other than setup's.
        me = asyncio.current_task()
        asyncio_logger.removeHandler(detector)
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
            problems.append("leaked tasks: " + ", ".join(sorted(t.get_name() for t in leaked)))
        if detector.messages:
            problems.append("event loop blocked: " + "; ".join(detector.messages[:3]))
        if problems:
            pytest.fail(" | ".join(problems))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fn = getattr(item, "function", None)
        is_async = fn is not None and asyncio.iscoroutinefunction(fn)
        if is_async and "no_loop_guard" not in item.keywords:
            item.fixturenames.insert(0, "loop_guard")  # type: ignore[attr-defined]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "no_loop_guard: skip the blocking/leak guard")
