"""sd_notify against a datagram socket standing in for systemd."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge.sdnotify import Notifier, watchdog_interval, watchdog_loop


@pytest.fixture
def systemd_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    try:
        yield sock, path
    finally:
        sock.close()


def received(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_ready_and_status_messages(systemd_socket: tuple[socket.socket, str]) -> None:
    sock, path = systemd_socket
    n = Notifier(path)
    assert n.ready("3 rooms up")
    assert n.stopping()
    assert received(sock) == ["READY=1\nSTATUS=3 rooms up", "STOPPING=1"]


def test_abstract_socket_address() -> None:
    name = f"@coresync-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name[1:])
    try:
        assert Notifier(name).notify(READY=1)
        assert sock.recv(100) == b"READY=1"
    finally:
        sock.close()


def test_no_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not Notifier().enabled
    assert Notifier().ready() is False


def test_watchdog_interval_from_env() -> None:
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "20000000"}) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "x"}) is None


async def test_watchdog_pings_only_while_healthy(systemd_socket: tuple[socket.socket, str]) -> None:
    sock, path = systemd_socket
    healthy = True
    checks_since_unhealthy = 0

    def check() -> bool:
        nonlocal checks_since_unhealthy
        if not healthy:
            checks_since_unhealthy += 1
        return healthy

    async def until(cond: Callable[[], bool], what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not cond():
            assert loop.time() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.01)

    task = asyncio.create_task(watchdog_loop(Notifier(path), 0.05, check), name="watchdog")
    try:
        pings: list[str] = []
        await until(lambda: bool(pings.extend(received(sock)) or pings), "a first ping")
        assert set(pings) == {"WATCHDOG=1"}
        healthy = False
        # The loop checks, then pings in the same step: once it has said
        # "unhealthy" once, anything still arriving was sent before that.
        await until(lambda: checks_since_unhealthy >= 1, "an unhealthy check")
        received(sock)
        await until(lambda: checks_since_unhealthy >= 4, "three more unhealthy checks")
        assert received(sock) == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.no_loop_guard
async def test_blocked_loop_sends_no_ping(systemd_socket: tuple[socket.socket, str]) -> None:
    import time

    sock, path = systemd_socket

    def check() -> bool:
        return True

    task = asyncio.create_task(watchdog_loop(Notifier(path), 0.05, check), name="watchdog")
    try:
        await asyncio.sleep(0.12)
        received(sock)
        time.sleep(0.5)  # noqa: ASYNC251 - a hang: the loop is blocked, so no ping may go out meanwhile
        assert received(sock) == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_failing_check_does_not_delay_the_next_ping(
    systemd_socket: tuple[socket.socket, str],
) -> None:
    sock, path = systemd_socket
    calls = 0

    def flaky() -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("a check that blew up once")
        return True

    task = asyncio.create_task(watchdog_loop(Notifier(path), 0.05, flaky), name="watchdog")
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        pings: list[str] = []
        while calls < 6 and loop.time() < deadline:
            await asyncio.sleep(0.05)
            pings += received(sock)
        pings += received(sock)
        # Every check but the failed one pinged, and the loop went on at its pace.
        assert calls >= 6, calls
        assert len(pings) >= calls - 2, (len(pings), calls)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
