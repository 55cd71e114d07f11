"""The alert dispatcher: critical events on the bus become messages to staff.

One supervised component.  Each ``alert`` event whose kind is forwarded
becomes an :class:`Alert` keyed by (kind, subject: the device, door or
component).  The same key again within ``dedup_window_s`` only counts; an
unacknowledged alert is sent again every ``repeat_s`` until a staff member
acknowledges it on the dashboard, which also drops what is still queued.

Every channel has its own queue: a message waits there through the
channel's quiet hours (urgent kinds excepted), its rate limit, and its
outages — a failed send is kept and retried with the shared backoff, and the
channel shows as a disconnected link in ``/healthz`` and ``/metrics`` while
anything fails.  Time comes from an injected :class:`edge.clock.Clock`.

Queues live in memory: a restart of the daemon forgets unsent messages (the
events themselves are in the logs, and the door's in door.db).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from drivers.backoff import Backoff
from edge.alerts import channels
from edge.alerts.config import AlertsConfig, ChannelConfig
from edge.alerts.errors import DeliveryFailed
from edge.clock import Clock, WallClock
from edge.core import EdgeCore
from edge.events import Event
from edge.opening_hours import _instant
from edge.supervisor import Supervisor

log = logging.getLogger(__name__)

RETRY_MIN_S = 5.0
RETRY_MAX_S = 300.0
KEPT_ALERTS = 200
HOUR = timedelta(hours=1)
COMPONENT_POLL_S = 2.0

Sender = Callable[[ChannelConfig, str, dict[str, Any]], Awaitable[None]]


@dataclass
class Alert:
    id: int
    kind: str
    subject: str | None
    severity: str
    message: str
    room_id: str | None
    first_at: datetime
    last_at: datetime
    sent_at: datetime  # last time it was queued to the channels (for repeats)
    count: int = 1
    acked_by: str | None = None
    acked_at: datetime | None = None

    def public(self, *, repeat: bool = False) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "subject": self.subject,
            "severity": self.severity,
            "message": self.message,
            "room_id": self.room_id,
            "first_at": self.first_at.isoformat(),
            "last_at": self.last_at.isoformat(),
            "count": self.count,
            "acked_by": self.acked_by,
            "acked_at": self.acked_at.isoformat() if self.acked_at else None,
            "repeat": repeat,
        }


@dataclass
class Outgoing:
    alert: Alert
    repeat: bool


@dataclass
class Channel:
    config: ChannelConfig
    queue: deque[Outgoing] = field(default_factory=deque)
    sent_times: deque[datetime] = field(default_factory=deque)  # for the hourly limit
    retry_at: datetime | None = None
    last_error: str | None = None
    delivered: int = 0
    failures: int = 0
    backoff: Backoff = field(default_factory=lambda: Backoff(RETRY_MIN_S, RETRY_MAX_S))

    def is_healthy(self) -> bool:
        """False while a send failed and its retry is pending (a link down in /healthz)."""
        return self.retry_at is None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.config.id,
            "type": self.config.type,
            "state": "ok" if self.is_healthy() else "failing",
            "pending": len(self.queue),
            "delivered": self.delivered,
            "failures": self.failures,
            "last_error": self.last_error,
            "retry_at": self.retry_at.isoformat() if self.retry_at else None,
        }


def subject_of(data: dict[str, Any], room_id: str | None) -> str | None:
    for key in ("device_id", "door", "component"):
        if data.get(key):
            return str(data[key])
    return room_id


class AlertDispatcher:
    def __init__(
        self,
        core: EdgeCore,
        config: AlertsConfig,
        tz: ZoneInfo,
        *,
        clock: Clock | None = None,
        sender: Sender = channels.send,
    ) -> None:
        self.core = core
        self.config = config
        self.tz = tz
        self.clock: Clock = clock or WallClock()
        self.sender = sender
        self.channels = {c.id: Channel(c) for c in config.channels}
        self.alerts: deque[Alert] = deque(maxlen=KEPT_ALERTS)
        self.suppressed = 0
        self.checked_through: datetime | None = None
        self._ids = itertools.count(1)
        self._kinds = config.forwarded()
        self._wake = asyncio.Event()
        # A tap, not a subscription: lossless, so a burst never drops an alert.
        self._inbox: deque[Event] = deque()
        self._untap = core.events.tap(self._on_event)
        _DISPATCHERS[core] = self

    def _on_event(self, event: Event) -> None:
        if event.type == "alert":
            self._inbox.append(event)
            self._wake.set()

    @classmethod
    async def create(
        cls, core: EdgeCore, config: AlertsConfig, clock: Clock | None = None
    ) -> AlertDispatcher:
        tz = await asyncio.to_thread(ZoneInfo, core.config.site.timezone)
        return cls(core, config, tz, clock=clock)

    # -- staff actions ----------------------------------------------------------------
    def ack(self, alert_id: int, by: str) -> Alert | None:
        """Acknowledge: no more repeats, and queued messages of it are dropped."""
        alert = next((a for a in self.alerts if a.id == alert_id), None)
        if alert is None:
            return None
        if alert.acked_by is None:
            alert.acked_by, alert.acked_at = by, self.clock.now()
            for channel in self.channels.values():
                channel.queue = deque(o for o in channel.queue if o.alert is not alert)
            self.core.events.publish("alert_ack", alert.public(), room_id=alert.room_id)
            self._wake.set()
        return alert

    def status(self) -> dict[str, Any]:
        return {
            "alerts": [a.public() for a in reversed(self.alerts)],
            "channels": [c.public() for c in self.channels.values()],
            "suppressed": self.suppressed,
        }

    # -- intake ----------------------------------------------------------------------
    def take(self, event: Event, now: datetime) -> None:
        data = event.data
        kind = str(data.get("kind", ""))
        # "info" is news that a fault cleared ("disk space back"): the
        # dashboard shows it, nobody is paged for it.
        if kind not in self._kinds or data.get("severity") == "info":
            return
        subject = subject_of(data, event.room_id)
        window = timedelta(seconds=self.config.dedup_window_s)
        for alert in reversed(self.alerts):
            if (alert.kind, alert.subject) != (kind, subject):
                continue
            if alert.acked_by is None and now - alert.last_at <= window:
                alert.count += 1
                alert.last_at = now
                self.suppressed += 1
                log.info("alert %s (%s) again: counted, not sent (x%d)", kind, subject, alert.count)
                return
            break
        alert = Alert(
            next(self._ids),
            kind,
            subject,
            str(data.get("severity", "critical")),
            str(data.get("message", kind)),
            event.room_id,
            now,
            now,
            now,
        )
        self.alerts.append(alert)
        self._queue(alert, repeat=False)

    def _queue(self, alert: Alert, *, repeat: bool) -> None:
        for channel in self.channels.values():
            # A repeat of a message still waiting (quiet hours, an outage) adds
            # nothing: the one waiting goes out, once.
            if repeat and any(o.alert is alert for o in channel.queue):
                continue
            channel.queue.append(Outgoing(alert, repeat))

    def _repeat_due(self, now: datetime) -> None:
        every = timedelta(seconds=self.config.repeat_s)
        for alert in self.alerts:
            if alert.acked_by is None and now - alert.sent_at >= every:
                alert.sent_at = now
                self._queue(alert, repeat=True)

    # -- delivery --------------------------------------------------------------------
    def _quiet_until(self, channel: Channel, now: datetime) -> datetime | None:
        """The end of the channel's quiet hours if ``now`` is in them."""
        span = channel.config.quiet_span()
        if span is None:
            return None
        start, end = span
        local = now.astimezone(self.tz)
        t = local.time().replace(tzinfo=None)
        inside = start <= t < end if start < end else (t >= start or t < end)
        if not inside:
            return None
        day = local.date() if t < end else local.date() + timedelta(days=1)
        return _instant(day, end, self.tz)

    def _rate_slot(self, channel: Channel, now: datetime) -> datetime | None:
        """When the channel may send again, if its hourly limit is used up."""
        while channel.sent_times and now - channel.sent_times[0] >= HOUR:
            channel.sent_times.popleft()
        if len(channel.sent_times) < channel.config.max_per_hour:
            return None
        return channel.sent_times[0] + HOUR

    async def _deliver(self, channel: Channel, now: datetime) -> datetime | None:
        """Send what the channel may send now; returns when to look again."""
        if channel.retry_at is not None and now < channel.retry_at:
            return channel.retry_at
        quiet_until = self._quiet_until(channel, now)
        held: deque[Outgoing] = deque()
        wake: datetime | None = None
        while channel.queue:
            out = channel.queue[0]
            if quiet_until is not None and out.alert.kind not in channel.config.urgent():
                held.append(channel.queue.popleft())
                wake = quiet_until
                continue
            slot = self._rate_slot(channel, now)
            if slot is not None:
                wake = slot if wake is None else min(wake, slot)
                break
            try:
                await self.sender(
                    channel.config, self.core.config.site.name, out.alert.public(repeat=out.repeat)
                )
            except Exception as exc:
                # DeliveryFailed is the expected failure; anything else (a
                # library's surprise on odd input) is handled the same way:
                # kept and retried, never a crash that would end in the
                # supervisor giving up on the whole daemon.
                if not isinstance(exc, DeliveryFailed):
                    log.exception("alert channel %s: unexpected send failure", channel.config.id)
                    exc = DeliveryFailed(f"{type(exc).__name__}: {exc}")
                channel.failures += 1
                channel.last_error = str(exc)
                delay = channel.backoff.failed()
                channel.retry_at = now + timedelta(seconds=delay)
                log.error(
                    "alert channel %s: %s; %d kept, retry in %.0f s",
                    channel.config.id,
                    exc,
                    len(channel.queue) + len(held),
                    delay,
                )
                wake = channel.retry_at
                break
            channel.queue.popleft()
            channel.sent_times.append(now)
            channel.delivered += 1
            if channel.retry_at is not None:
                log.warning("alert channel %s delivers again", channel.config.id)
            channel.retry_at, channel.last_error = None, None
            channel.backoff.succeeded()
        channel.queue.extendleft(reversed(held))
        return wake

    # -- the component -----------------------------------------------------------------
    async def run(self) -> None:
        while True:
            now = self.clock.now()
            while self._inbox:
                self.take(self._inbox.popleft(), now)
            self._repeat_due(now)
            wakes = await asyncio.gather(*(self._deliver(c, now) for c in self.channels.values()))
            self.checked_through = now
            due = [w for w in wakes if w is not None]
            due += [
                a.sent_at + timedelta(seconds=self.config.repeat_s)
                for a in self.alerts
                if a.acked_by is None
            ]
            await self._wait(min(due, default=None))

    async def _wait(self, until: datetime | None) -> None:
        waits: list[asyncio.Task[Any]] = [
            asyncio.create_task(self._wake.wait(), name="alerts-wake"),
        ]
        if until is not None:
            waits.append(asyncio.create_task(self.clock.sleep_until(until), name="alerts-due"))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.wait(waits)
        if not self._inbox:
            self._wake.clear()

    def close(self) -> None:
        self._untap()


async def watch_components(core: EdgeCore, supervisor: Supervisor) -> None:
    """Publish a ``component_restarting`` alert when a supervised component
    crashes (the supervisor itself only logs and counts)."""
    seen = {name: c.restarts for name, c in supervisor.components.items()}
    while True:
        await asyncio.sleep(COMPONENT_POLL_S)
        for name, component in list(supervisor.components.items()):
            before = seen.get(name, 0)
            seen[name] = component.restarts
            if component.restarts > before:
                core.events.publish(
                    "alert",
                    {
                        "severity": "critical",
                        "kind": "component_restarting",
                        "component": name,
                        "message": f"component {name} crashed and is restarting "
                        f"(restart {component.restarts}): {component.last_error}",
                    },
                )


_DISPATCHERS: weakref.WeakKeyDictionary[EdgeCore, AlertDispatcher] = weakref.WeakKeyDictionary()


def dispatcher_for(core: EdgeCore) -> AlertDispatcher | None:
    return _DISPATCHERS.get(core)
