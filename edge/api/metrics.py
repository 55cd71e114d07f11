"""Prometheus metrics with ``prometheus_client``, in its naming conventions
(``_total`` counters, ``_seconds`` durations, ``_timestamp_seconds`` for a
point in time rather than an age).

``/metrics`` answers loopback clients without a token (a local node exporter
or agent scrapes it); from the LAN it needs a staff token, because device
availability and command counts describe the building.

Two kinds of figures: counters and histograms updated as requests, commands
and door decisions happen (:class:`Metrics`, one registry per app), and
figures read where they live at scrape time (devices, door, sync, the
daemon's components, the process).  A scrape copies the latter on the event
loop, then renders everything on a thread (the process collector and the
free-space check read files).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from drivers.model import Availability
from edge.api.keys import CORE, DATA_DIR, METRICS
from edge.api.metrics_process import DaemonFigures, daemon_families, daemon_figures
from edge.core import EdgeCore
from edge.door import registry
from edge.events import Event
from edge.request_metrics import BUCKETS, RequestMetrics

log = logging.getLogger(__name__)

# `_created` series double every counter for a figure no dashboard of ours uses.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """The counters and histograms of one LAN API app (its own registry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # Requests by method, route and status, and their latency: the shared
        # timing of edge.request_metrics (counted cheaply, rendered at scrape).
        self.http = RequestMetrics("coresync_api", "HTTP")
        r.register(self.http)
        self._ws_clients = Gauge(
            "coresync_api_websocket_clients", "Connected WebSocket clients.", registry=r
        )
        self.commands = Counter(
            "coresync_device_commands", "Device commands by result.", ["result"], registry=r
        )
        self.command_seconds = Histogram(
            "coresync_device_command_seconds",
            "Device command duration, send to confirmed.",
            buckets=BUCKETS,
            registry=r,
        )
        self.door_decisions = Counter(
            "coresync_door_decisions",
            "Door decisions by decision and method.",
            ["decision", "method"],
            registry=r,
        )
        self._untap: Callable[[], None] | None = None

    @property
    def ws_clients(self) -> int:
        return int(self.value("coresync_api_websocket_clients"))

    @ws_clients.setter
    def ws_clients(self, count: int) -> None:
        self._ws_clients.set(count)

    def value(self, name: str, **labels: str) -> float:
        """One sample of this registry (0 when not observed yet), for tests and checks."""
        return self.registry.get_sample_value(name, labels) or 0.0

    # -- events (door decisions, command results and durations) ----------------------
    def start(self, core: EdgeCore) -> None:
        """Count door decisions and commands as they are published, until stop().

        A tap, not a subscription: it runs inside ``publish``, so a burst that
        overflows the bus's subscriber queues loses no count.
        """
        if self._untap is None:
            self._untap = core.events.tap(self.on_event)

    async def stop(self) -> None:
        untap, self._untap = self._untap, None
        if untap is not None:
            untap()

    def on_event(self, event: Event) -> None:
        data = event.data
        if event.type == "door":
            self.door_decisions.labels(str(data.get("decision")), str(data.get("method"))).inc()
        elif event.type == "command":
            self.command_result(str(data.get("result")))
        if event.type == "command" and isinstance(data.get("duration_ms"), int | float):
            self.command_seconds.observe(float(data["duration_ms"]) / 1000.0)

    def command_result(self, result: str) -> None:
        self.commands.labels(result).inc()

    # -- a scrape ----------------------------------------------------------------------
    async def exposition(
        self,
        core: EdgeCore,
        sync: dict[str, Any] | None = None,
        door: dict[str, Any] | None = None,
        data_dir: Path | None = None,
    ) -> bytes:
        """The text format; ``sync`` is ``sync_status`` and ``door`` is
        ``DoorService.status()``, each None when the site has none."""
        scrape = _Scrape(
            devices=[
                (room_id, device.device_id, device.snapshot().availability is Availability.ONLINE)
                for room_id, device in sorted(core.all_devices(), key=lambda rd: rd[1].device_id)
            ],
            door=door,
            sync=sync,
            daemon=daemon_figures(core, data_dir),
        )
        return await asyncio.to_thread(self._render, scrape)

    def _render(self, scrape: _Scrape) -> bytes:
        at_scrape = CollectorRegistry(auto_describe=False)
        at_scrape.register(scrape)
        ProcessCollector(registry=at_scrape)
        return generate_latest(self.registry) + generate_latest(at_scrape)


@dataclass(frozen=True, eq=False)  # hashed by identity: a registry keys collectors
class _Scrape:
    """Figures copied on the loop at scrape time; a collector for one scrape."""

    devices: list[tuple[str, str, bool]]
    door: dict[str, Any] | None
    sync: dict[str, Any] | None
    daemon: DaemonFigures

    def collect(self) -> Iterable[Metric]:
        available = GaugeMetricFamily(
            "coresync_device_available",
            "1 when the device is online, else 0.",
            labels=["room", "device"],
        )
        for room_id, device_id, up in self.devices:
            available.add_metric([room_id, device_id], int(up))
        yield available
        yield from _door_families(self.door)
        yield from _sync_families(self.sync)
        yield from daemon_families(self.daemon)


def _door_families(door: dict[str, Any] | None) -> Iterator[Metric]:
    if door is None:
        return
    labels, name = ["door"], [str(door["door"])]
    up = GaugeMetricFamily(
        "coresync_vision_worker_up",
        "0 while the door's face recognition is unavailable.",
        labels=labels,
    )
    up.add_metric(name, int(door.get("vision") != "down"))
    restarts = CounterMetricFamily(
        "coresync_vision_worker_restarts", "Restarts of the vision worker process.", labels=labels
    )
    restarts.add_metric(name, int(door["worker_restarts"]))
    cooling = GaugeMetricFamily(
        "coresync_door_cooling_down",
        "1 while face access pauses after failed attempts.",
        labels=labels,
    )
    cooling.add_metric(name, int(bool(door.get("cooling_down"))))
    yield from (up, restarts, cooling)


def _sync_families(sync: dict[str, Any] | None) -> Iterator[Metric]:
    if sync is None:
        return
    yield GaugeMetricFamily(
        "coresync_sync_queue_depth",
        "Changes waiting to be pushed to the cloud.",
        value=int(sync["queue_depth"]),
    )
    yield GaugeMetricFamily(
        "coresync_sync_attention_open",
        "Sync items waiting for staff.",
        value=int(sync.get("attention_open") or 0),
    )
    last = sync.get("last_success")
    if last:  # never synced: no sample, rather than a made-up time
        yield GaugeMetricFamily(
            "coresync_sync_last_success_timestamp_seconds",
            "Unix time of the last full sync with the cloud.",
            value=datetime.fromisoformat(str(last)).astimezone(UTC).timestamp(),
        )


async def _sync_status(core: EdgeCore) -> dict[str, Any] | None:
    """sync_status at scrape time (a few indexed reads on the shop's threads)."""
    if core.shop is None or core.config.cloud is None:
        return None
    from sync import sync_status

    try:
        return await core.run_shop(sync_status)
    except Exception:
        # A scrape must still answer with the other figures.
        log.exception("sync status for /metrics failed")
        return None


async def metrics_handler(request: web.Request) -> web.Response:
    metrics: Metrics = request.app[METRICS]
    core: EdgeCore = request.app[CORE]
    door = registry.door_for(core)
    body = await metrics.exposition(
        core,
        await _sync_status(core),
        door.status() if door is not None else None,
        request.app[DATA_DIR],
    )
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})
