"""The scene scheduler: runs the site's schedules at their time, with no network.

:func:`next_run` turns a schedule into its next instant in the site's time
zone (wall-clock times through ``zoneinfo``, opening and closing through
:class:`edge.opening_hours.OpeningHours`, so a day with a daylight-saving
change keeps its local times).  :class:`ScheduleRunner` is one supervised
component: it sleeps until the next instant on an injected :class:`Clock`,
runs every schedule then due through :meth:`EdgeCore.activate_scene` with
actor ``schedule:<id>`` (so limits are checked and each command is logged
like any other), and wakes early when a manager edits the schedules.

A run found more than ``LATE_LIMIT`` late (the controller was down, or the
wall clock jumped forward) is logged as missed instead of run: pre-heating a
sauna three hours after opening would surprise more than help.  A clock set
back does not repeat a run already done.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from edge.clock import Clock, WallClock
from edge.core import Actor, EdgeCore
from edge.errors import EdgeError, StorageError
from edge.migrations import MigrationError
from edge.opening_hours import WEEKDAYS, OpeningHours, _instant
from edge.schedules_config import ScheduleSpec, check_schedule
from edge.schedules_store import delete_row, load_rows, save_row

log = logging.getLogger(__name__)

LATE_LIMIT = timedelta(minutes=10)
RECENT_RUNS = 100
_SEARCH_DAYS = 400  # a year of holidays and a weekday filter still finds the next run


def run_on(
    spec: ScheduleSpec, day: date, tz: ZoneInfo, hours: OpeningHours | None
) -> datetime | None:
    """The instant ``spec`` runs for local ``day`` (UTC); None if it does not run that day."""
    if spec.days is not None and WEEKDAYS[day.weekday()] not in spec.days:
        return None
    at = spec.at_time
    if at is not None:
        if hours is not None and day in hours.holidays and not spec.on_holidays:
            return None
        return _instant(day, at, tz)
    if hours is None:
        return None
    if spec.before_opening_min is not None:
        opens = hours.opens_at(day, tz)
        return None if opens is None else opens - timedelta(minutes=spec.before_opening_min)
    closes = hours.closes_at(day, tz)
    return None if closes is None else closes + timedelta(minutes=spec.after_closing_min or 0)


def next_run(
    spec: ScheduleSpec, after: datetime, tz: ZoneInfo, hours: OpeningHours | None
) -> datetime | None:
    """The first instant strictly after ``after`` at which ``spec`` runs."""
    # Offsets from opening can reach into the day before: start a day early
    # and keep the earliest candidate of the next few days.
    first_day = after.astimezone(tz).date() - timedelta(days=1)
    best: datetime | None = None
    for offset in range(_SEARCH_DAYS):
        day = first_day + timedelta(days=offset)
        if best is not None and _instant(day, datetime.min.time(), tz) > best + timedelta(days=1):
            break
        instant = run_on(spec, day, tz, hours)
        if instant is not None and instant > after and (best is None or instant < best):
            best = instant
    return best


@dataclass(frozen=True, slots=True)
class Entry:
    """A schedule as the runner knows it: where it comes from, and whether it runs."""

    spec: ScheduleSpec | None
    schedule_id: str
    source: str  # config | dashboard
    problem: str | None = None  # a stored row that no longer fits the site
    updated_by: str | None = None

    @property
    def runs(self) -> bool:
        return self.spec is not None and self.spec.enabled and self.problem is None


class ScheduleError(EdgeError):
    """A schedule edit refused: ``field`` names the key at fault."""

    def __init__(self, message: str, field: str | None = None, *, conflict: bool = False) -> None:
        super().__init__(message)
        self.field = field
        self.conflict = conflict


class ScheduleRunner:
    """Build with :meth:`create` (reading the time zone file is I/O)."""

    def __init__(self, core: EdgeCore, tz: ZoneInfo, clock: Clock | None = None) -> None:
        self.core = core
        self.clock: Clock = clock or WallClock()
        self.tz = tz
        self.hours = core.config.opening_hours
        self._config = [Entry(s, s.id, "config") for s in core.config.schedules]
        self._stored: list[Entry] = []
        self._stored_loaded = False
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_RUNS)
        # Every run up to this instant has been done (or found missed).
        self.checked_through: datetime | None = None
        self.next_due: datetime | None = None
        self._changed = asyncio.Event()
        _RUNNERS[core] = self

    @classmethod
    async def create(cls, core: EdgeCore, clock: Clock | None = None) -> ScheduleRunner:
        tz = await asyncio.to_thread(ZoneInfo, core.config.site.timezone)
        return cls(core, tz, clock)

    # -- the schedules -------------------------------------------------------------
    def entries(self) -> list[Entry]:
        return [*self._config, *self._stored]

    def view(self) -> list[dict[str, Any]]:
        """Every schedule with its next run, for the dashboard."""
        after = self.checked_through or self.clock.now()
        out = []
        for entry in self.entries():
            spec = entry.spec
            nxt = next_run(spec, after, self.tz, self.hours) if spec and entry.runs else None
            out.append(
                {
                    "id": entry.schedule_id,
                    "source": entry.source,
                    "spec": entry.spec.model_dump() if entry.spec is not None else None,
                    "describe": entry.spec.describe() if entry.spec is not None else None,
                    "problem": entry.problem,
                    "updated_by": entry.updated_by,
                    "next_run": nxt.isoformat() if nxt is not None else None,
                }
            )
        return out

    def validate(self, spec: ScheduleSpec) -> None:
        """Refuse a dashboard schedule that does not fit the site (ScheduleError)."""
        problem = check_schedule(spec, self.core.config.rooms, self.hours)
        if problem is not None:
            raise ScheduleError(str(problem), str(problem.loc[0]))
        if any(e.schedule_id == spec.id for e in self._config):
            raise ScheduleError(
                f"schedule {spec.id!r} comes from the config file; edit it there",
                "id",
                conflict=True,
            )

    async def save(self, spec: ScheduleSpec, by: str) -> None:
        self.validate(spec)
        if not self._stored_loaded:
            await self._load_stored()  # creates the table; StorageError if it cannot
        await self.core.store.call(lambda c: save_row(c, spec.id, spec.model_dump_json(), by))
        await self._load_stored()
        self._changed.set()

    async def delete(self, schedule_id: str) -> bool:
        if any(e.schedule_id == schedule_id for e in self._config):
            raise ScheduleError(
                f"schedule {schedule_id!r} comes from the config file; edit it there",
                "id",
                conflict=True,
            )
        if not self._stored_loaded:
            await self._load_stored()
        deleted = await self.core.store.call(lambda c: delete_row(c, schedule_id))
        await self._load_stored()
        self._changed.set()
        return deleted

    async def _load_stored(self) -> None:
        try:
            rows = await self.core.store.call(load_rows)
        except MigrationError as exc:
            # The table could not be created (the database is locked or full).
            raise StorageError(str(exc)) from exc
        entries = []
        for schedule_id, spec_json, by, _ in rows:
            try:
                spec = ScheduleSpec.model_validate_json(spec_json)
            except ValidationError as exc:
                entries.append(Entry(None, schedule_id, "dashboard", f"unreadable: {exc}", by))
                continue
            problem = check_schedule(spec, self.core.config.rooms, self.hours)
            entries.append(
                Entry(spec, schedule_id, "dashboard", None if problem is None else str(problem), by)
            )
            if problem is not None:
                log.error("stored schedule %s not run: %s", schedule_id, problem)
        self._stored = entries
        self._stored_loaded = True

    # -- running -------------------------------------------------------------------
    async def run(self) -> None:
        """The supervised component: until cancelled."""
        if self.checked_through is None:
            self.checked_through = self.clock.now()
        while True:
            if not self._stored_loaded:
                try:
                    await self._load_stored()
                except StorageError as exc:
                    # The config's schedules run meanwhile; retried at each wake.
                    log.error("stored schedules unavailable, config schedules only: %s", exc)
            self.next_due = self._earliest(self.checked_through)
            await self._wait(self.next_due)
            now = self.clock.now()
            if now > self.checked_through:
                await self._run_due(self.checked_through, now)
                self.checked_through = now

    def _earliest(self, after: datetime) -> datetime | None:
        instants = [
            next_run(e.spec, after, self.tz, self.hours)
            for e in self.entries()
            if e.runs and e.spec is not None
        ]
        return min((i for i in instants if i is not None), default=None)

    async def _wait(self, until: datetime | None) -> None:
        """Until ``until`` or an edit; with storage still unread, at most a minute."""
        waits: list[asyncio.Task[Any]] = [
            asyncio.create_task(self._changed.wait(), name="schedules-changed")
        ]
        if until is not None:
            waits.append(asyncio.create_task(self.clock.sleep_until(until), name="schedules-due"))
        if not self._stored_loaded:
            waits.append(asyncio.create_task(asyncio.sleep(60), name="schedules-retry"))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.wait(waits)
        self._changed.clear()

    async def _run_due(self, since: datetime, now: datetime) -> None:
        due: list[tuple[ScheduleSpec, datetime]] = []
        for entry in self.entries():
            if not entry.runs or entry.spec is None:
                continue
            instant = next_run(entry.spec, since, self.tz, self.hours)
            latest: datetime | None = None
            while instant is not None and instant <= now:
                if latest is not None:
                    self._missed(entry.spec, latest, now)
                latest = instant
                instant = next_run(entry.spec, instant, self.tz, self.hours)
            if latest is None:
                continue
            if now - latest > LATE_LIMIT:
                self._missed(entry.spec, latest, now)
            else:
                due.append((entry.spec, latest))
        await asyncio.gather(*(self._run_one(spec, at) for spec, at in due))

    def _missed(self, spec: ScheduleSpec, at: datetime, now: datetime) -> None:
        log.warning(
            "schedule %s missed its run at %s (now %s): not run late",
            spec.id,
            at.isoformat(),
            now.isoformat(),
        )
        self._record(spec, at, "missed", None)

    async def _run_one(self, spec: ScheduleSpec, at: datetime) -> None:
        actor = Actor("schedule", spec.id)
        try:
            result = await self.core.activate_scene(spec.room, spec.scene, actor)
        except EdgeError as exc:
            log.error("schedule %s could not run %s/%s: %s", spec.id, spec.room, spec.scene, exc)
            self._record(spec, at, "refused", str(exc))
            return
        except Exception as exc:
            # Recorded, not raised: a crash would restart the runner at the
            # same instant, run the same schedule again, crash again, and end
            # in the supervisor giving up on the daemon.
            log.exception("schedule %s failed running %s/%s", spec.id, spec.room, spec.scene)
            self._record(spec, at, "error", f"{type(exc).__name__}: {exc}")
            return
        failed = result.as_dict()["failed"]
        log.info("schedule %s ran %s/%s (failed: %s)", spec.id, spec.room, spec.scene, failed)
        self._record(spec, at, "ok" if result.ok else "failed", ", ".join(failed) or None)

    def _record(self, spec: ScheduleSpec, at: datetime, result: str, detail: str | None) -> None:
        run = {
            "schedule_id": spec.id,
            "room_id": spec.room,
            "scene_id": spec.scene,
            "due": at.isoformat(),
            "result": result,
            "detail": detail,
        }
        self.recent.append(run)
        self.core.events.publish("schedule_run", run, room_id=spec.room)


_RUNNERS: weakref.WeakKeyDictionary[EdgeCore, ScheduleRunner] = weakref.WeakKeyDictionary()


def runner_for(core: EdgeCore) -> ScheduleRunner | None:
    """The schedule runner of ``core``'s daemon (the API edits through it)."""
    return _RUNNERS.get(core)
