"""One supervisor per component, after Erlang/OTP's ``one_for_one`` strategy.

Each component of the daemon (the MQTT connection, each Modbus bus, the
heater guards, the door, the LAN API, cloud sync, ...) runs in its own task
under :class:`Supervisor`.  When a component crashes, its supervisor logs
the traceback, marks it ``restarting`` (so ``/healthz`` and ``/metrics`` show
it as down), waits the shared jittered backoff (:mod:`drivers.backoff`) and
starts it again; the other components never notice.

A component that crashes more than ``max_restarts`` times within
``window_s`` seconds has exceeded its *restart budget*: restarting it in
place is not helping, so the supervisor gives up and :meth:`Supervisor.wait`
returns the reason.  ``coresync-edge run`` then exits non-zero and systemd's
``Restart=on-failure`` restarts the whole process (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from drivers.backoff import Backoff
from drivers.config import StrictModel
from edge.outage import is_storage_outage

if TYPE_CHECKING:
    from edge.core import EdgeCore
    from edge.health import LoopMonitor

log = logging.getLogger(__name__)

# A component that ran this long before crashing starts its backoff over.
STABLE_RUN_S = 30.0


class SupervisionConfig(StrictModel):
    """Restart policy for the daemon's components (one policy for all)."""

    max_restarts: int = Field(
        10,
        ge=1,
        le=10_000,
        description="Restart budget: crashes of one component tolerated within window_s; "
        "one more and the process exits non-zero so systemd restarts it.",
    )
    window_s: float = Field(
        300.0, gt=0, le=86_400, description="Sliding window of the restart budget, seconds."
    )
    restart_min_s: float = Field(
        0.5, gt=0, le=600, description="First restart delay after a crash, seconds (jittered)."
    )
    restart_max_s: float = Field(
        30.0, gt=0, le=3600, description="Upper bound of the restart delay, seconds."
    )

    @model_validator(mode="after")
    def _ordered(self) -> SupervisionConfig:
        if self.restart_min_s > self.restart_max_s:
            raise ValueError("restart_min_s must not exceed restart_max_s")
        return self


class State(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"  # crashed; waiting out the backoff
    FAILED = "failed"  # past its restart budget: the process is exiting
    STOPPED = "stopped"


Factory = Callable[[], Awaitable[None]]


@dataclass
class Component:
    name: str
    factory: Factory
    safety: bool = False  # the safety part: heater guards
    state: State = State.STARTING
    restarts: int = 0
    last_error: str | None = None
    down_since: float | None = None
    crashes: deque[float] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    crashed: asyncio.Event = field(default_factory=asyncio.Event)  # set at each crash

    @property
    def up(self) -> bool:
        return self.state is State.RUNNING

    def public(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "restarts": self.restarts,
            "last_error": self.last_error,
            "safety": self.safety,
        }


class Supervisor:
    def __init__(self, config: SupervisionConfig | None = None) -> None:
        self.config = config or SupervisionConfig()
        self.components: dict[str, Component] = {}
        # Links to the outside whose loss /healthz and /metrics report
        # ("mqtt", "camera"): name -> is it up now.
        self.links: dict[str, Callable[[], bool]] = {}
        self.monitor: LoopMonitor | None = None  # event-loop lag, for /metrics
        self._gave_up: asyncio.Future[str] | None = None

    def add(self, name: str, factory: Factory, *, safety: bool = False) -> Component:
        """Start ``factory()`` as the component ``name`` and keep it running."""
        if name in self.components:
            raise ValueError(f"component {name!r} is supervised twice")
        if self._gave_up is None:
            self._gave_up = asyncio.get_running_loop().create_future()
        component = Component(name, factory, safety)
        self.components[name] = component
        component.task = asyncio.create_task(self._keep(component), name=f"supervise:{name}")
        return component

    def status(self) -> dict[str, dict[str, Any]]:
        return {name: c.public() for name, c in self.components.items()}

    def all_up(self) -> bool:
        return all(c.up for c in self.components.values())

    async def wait(self) -> str:
        """Until a component exceeds its restart budget; returns why."""
        if self._gave_up is None:
            self._gave_up = asyncio.get_running_loop().create_future()
        return await asyncio.shield(self._gave_up)

    async def stop(self, name: str) -> None:
        component = self.components[name]
        task = component.task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
        component.state = State.STOPPED

    async def stop_all(self) -> None:
        """Stop every component, last added first."""
        for name in reversed(list(self.components)):
            log.debug("stopping %s", name)
            await self.stop(name)

    @staticmethod
    async def _run_once(c: Component) -> None:
        # Down until it has run for a moment: a component that fails at once
        # (a disk still full) keeps its down_since across retries.
        marker = asyncio.get_running_loop().call_later(1.0, _mark_up, c)
        try:
            await c.factory()
        finally:
            marker.cancel()

    async def _outage(self, c: Component, backoff: Backoff, error: str) -> None:
        c.crashed.set()
        if c.last_error != error:
            log.error("component %s unavailable (storage): %s; retrying", c.name, error)
        c.last_error = error
        c.down_since = c.down_since or time.time()
        c.state = State.RESTARTING
        c.restarts += 1
        await asyncio.sleep(backoff.failed())

    async def _keep(self, c: Component) -> None:
        backoff = Backoff(self.config.restart_min_s, self.config.restart_max_s)
        while True:
            started = time.monotonic()
            c.state = State.RUNNING
            try:
                await self._run_once(c)
                error = "ended on its own"
                log.error("component %s ended on its own; restarting it", c.name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                if is_storage_outage(exc):
                    # A full or locked disk: restarting the process would not
                    # help, so it does not count against the restart budget.
                    await self._outage(c, backoff, error)
                    continue
                # The traceback goes to the log once per crash (journald keeps it).
                log.error(
                    "component %s crashed: %s\n%s",
                    c.name,
                    error,
                    "".join(traceback.format_exception(exc)).rstrip(),
                )
            now = time.monotonic()
            c.crashed.set()
            c.last_error = error
            c.down_since = c.down_since or time.time()
            c.crashes.append(now)
            while c.crashes and c.crashes[0] < now - self.config.window_s:
                c.crashes.popleft()
            if len(c.crashes) > self.config.max_restarts:
                c.state = State.FAILED
                reason = (
                    f"component {c.name} crashed {len(c.crashes)} times in "
                    f"{self.config.window_s:g} s (budget {self.config.max_restarts}): {error}"
                )
                log.critical("%s; giving up so the process restarts", reason)
                if self._gave_up is not None and not self._gave_up.done():
                    self._gave_up.set_result(reason)
                return
            if now - started >= STABLE_RUN_S:
                backoff.succeeded()
            delay = backoff.failed()
            c.state = State.RESTARTING
            c.restarts += 1
            log.warning("component %s restarts in %.2f s (restart %d)", c.name, delay, c.restarts)
            await asyncio.sleep(delay)


def _mark_up(c: Component) -> None:
    c.down_since = None


# -- which supervisor runs which core (the API reads it for /healthz and /metrics) --
_SUPERVISORS: weakref.WeakKeyDictionary[EdgeCore, Supervisor] = weakref.WeakKeyDictionary()


def register(core: EdgeCore, supervisor: Supervisor) -> None:
    _SUPERVISORS[core] = supervisor


def supervisor_for(core: EdgeCore) -> Supervisor | None:
    return _SUPERVISORS.get(core)
