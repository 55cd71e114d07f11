"""``coresync-cloud serve --workers N``: N worker processes on one port, one PostgreSQL.

The parent does not serve.  It starts N children (``serve --worker-index i``),
each a whole cloud API that binds the same host and port with SO_REUSEPORT,
so the Linux kernel spreads incoming connections over them; no load balancer
is needed (one can still sit in front).  The workers share nothing but
PostgreSQL: numbers come from each worker's own leased blocks
(``edge.shop.numbering.NumberReserve``, owner ``cloud-w<i>``), the feed is
ordered by advisory locks (``sync/feed.py``), and the only per-process state
is a 5-minute cache of node credential checks (and each node's site).  Worker
0 compacts the feed.

A worker that dies is started again after the shared backoff
(``drivers/backoff.py``); SIGTERM or SIGINT to the parent stops every worker
and waits for them; a parent killed outright takes its workers with it (no
orphan keeps the port).  See docs/cloud.md "Several workers".
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from drivers.backoff import Backoff

log = logging.getLogger(__name__)
STOP_WAIT_S = 15.0
HEALTHY_AFTER_S = 30.0  # a worker that ran this long starts its restart backoff afresh


def worker_owner(index: int) -> str:
    """The number-block owner of worker ``index`` (stable across its restarts)."""
    return f"cloud-w{index}"


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies, even by SIGKILL, so no
    orphan worker keeps the port (Linux prctl PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


class WorkerSet:
    def __init__(self, argv: list[str], workers: int) -> None:
        self.argv, self.workers = argv, workers
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self.started: dict[int, float] = {}
        self.backoff = {i: Backoff(0.2, 10.0) for i in range(workers)}
        self.stopping = threading.Event()

    def _start(self, index: int) -> None:
        cmd = [sys.executable, "-m", "cloud_api.cli", *self.argv, "--worker-index", str(index)]
        self.children[index] = subprocess.Popen(cmd, preexec_fn=_die_with_parent)
        self.started[index] = time.monotonic()
        log.info("cloud worker %d started (pid %d)", index, self.children[index].pid)

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping.set()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        for i in range(self.workers):
            self._start(i)
        due: dict[int, float] = {}
        while not self.stopping.wait(0.2):
            now = time.monotonic()
            for i, child in list(self.children.items()):
                if i in due:
                    if now >= due[i]:
                        del due[i]
                        self._start(i)
                    continue
                code = child.poll()
                if code is None:
                    continue
                if now - self.started[i] > HEALTHY_AFTER_S:
                    self.backoff[i].succeeded()
                delay = self.backoff[i].failed()
                log.error("cloud worker %d exited with %s; restarting in %.1f s", i, code, delay)
                due[i] = now + delay
        return self._shutdown()

    def _shutdown(self) -> int:
        for child in self.children.values():
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + STOP_WAIT_S
        for child in self.children.values():
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        log.info("cloud workers stopped")
        return 0


def serve_workers(argv: list[str], workers: int) -> int:
    """Run ``coresync-cloud`` ``argv`` (a ``serve`` command line) as ``workers`` workers."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    log.info("coresync-cloud: %d workers on one port (SO_REUSEPORT), cwd %s", workers, Path.cwd())
    return WorkerSet(argv, workers).run()
