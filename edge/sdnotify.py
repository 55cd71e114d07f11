"""systemd notification protocol (sd_notify), written against the protocol.

``NOTIFY_SOCKET`` names a Unix datagram socket (a leading ``@`` means the
abstract namespace); each message is newline-separated ``KEY=VALUE`` lines.
With ``Type=notify`` the daemon sends ``READY=1`` once it is really up, and
with ``WatchdogSec=`` it must send ``WATCHDOG=1`` more often than
``WATCHDOG_USEC``.  Outside systemd every call is a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self.address: str | None = None
        if address:
            self.address = "\0" + address[1:] if address.startswith("@") else address

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=VALUE`` fields (``notify(READY=1, STATUS="up")``); False if not sent."""
        if self.address is None:
            return False
        message = "\n".join(f"{k}={v}" for k, v in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # Non-blocking: a datagram to a local socket either goes at
                # once or fails (a full queue), it never stalls the event loop.
                sock.setblocking(False)
                sock.connect(self.address)
                sock.sendall(message)
        except OSError as exc:
            log.warning("sd_notify to %r failed: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str = "running") -> bool:
        return self.notify(READY=1, STATUS=status)

    def stopping(self) -> bool:
        return self.notify(STOPPING=1)


def watchdog_interval(env: dict[str, str] | None = None) -> float | None:
    """Half the watchdog period systemd asked for, in seconds; None if no watchdog.

    Honours ``WATCHDOG_PID`` (the watchdog is meant for another process then).
    """
    env = dict(os.environ) if env is None else env
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    try:
        return max(int(usec) / 1_000_000 / 2, 0.05)
    except ValueError:
        return None


async def watchdog_loop(notifier: Notifier, interval: float, alive: Callable[[], bool]) -> None:
    """Ping ``WATCHDOG=1`` every ``interval`` while ``alive()`` says so.

    The loop itself runs on the event loop, so a blocked loop sends nothing;
    ``alive`` adds what else must hold for a restart to help (the safety part
    runs: edge.health.LoopMonitor.alive).  It is a plain, instant check: no
    disk, no database, so a locked or full database never delays or withholds
    a ping (those show in /healthz instead).
    """
    withheld = False
    while True:
        try:
            ok = alive()
        except Exception as exc:
            log.warning("watchdog check failed: %s", exc)
            ok = False
        if ok:
            notifier.notify(WATCHDOG=1)
            if withheld:
                log.info("alive again: watchdog pings resumed")
            withheld = False
        elif not withheld:
            withheld = True
            log.error("the safety part is not running: withholding the watchdog ping")
        await asyncio.sleep(interval)
