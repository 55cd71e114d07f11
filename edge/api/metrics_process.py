"""The daemon's own figures for ``/metrics``: supervised components, links to
the outside (MQTT, camera, Modbus buses), the data dir's free space, the
event loop's lag and events the bus dropped.  The process's memory, CPU and
open files come from ``prometheus_client``'s ProcessCollector (``process_*``).

Each is read where it lives at scrape time (a gauge of the supervisor, a
counter of the bus), never counted from the lossy event bus.  Reading is
split in two: :func:`daemon_figures` copies the in-memory state on the event
loop; :func:`daemon_families` turns it into metric families on the scrape's
thread, where the free-space system call may touch the disk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from edge.core import EdgeCore
from edge.health import disk_free
from edge.supervisor import supervisor_for


@dataclass(frozen=True)
class DaemonFigures:
    data_dir: Path | None
    bus_dropped: int
    # (component, up, restarts)
    components: list[tuple[str, bool, int]] = field(default_factory=list)
    links: dict[str, bool] = field(default_factory=dict)
    lag_s: float | None = None
    max_lag_s: float | None = None


def daemon_figures(core: EdgeCore, data_dir: Path | None) -> DaemonFigures:
    """A copy of the supervisor's and the bus's state (on the loop: memory only)."""
    sup = supervisor_for(core)
    if sup is None:
        return DaemonFigures(data_dir, core.events.dropped)
    monitor = sup.monitor
    return DaemonFigures(
        data_dir,
        core.events.dropped,
        [(name, c.up, c.restarts) for name, c in sup.components.items()],
        {name: probe() for name, probe in sup.links.items()},
        monitor.lag_s if monitor is not None else None,
        monitor.max_lag_s if monitor is not None else None,
    )


def daemon_families(f: DaemonFigures) -> Iterator[Metric]:
    """The families of :class:`DaemonFigures` (on a thread: reads the filesystem)."""
    dropped = CounterMetricFamily(
        "coresync_event_bus_dropped", "Events the bus dropped for slow subscribers."
    )
    dropped.add_metric([], f.bus_dropped)
    yield dropped
    if f.data_dir is not None:
        try:
            free: int | None = disk_free(f.data_dir)
        except OSError:
            free = None
        if free is not None:
            yield GaugeMetricFamily(
                "coresync_disk_free_bytes", "Free bytes on the data dir's filesystem.", value=free
            )
    if f.components:
        up = GaugeMetricFamily(
            "coresync_component_up",
            "1 while the supervised component runs, else 0.",
            labels=["component"],
        )
        restarts = CounterMetricFamily(
            "coresync_component_restarts",
            "Restarts of the component after a crash.",
            labels=["component"],
        )
        for name, is_up, count in f.components:
            up.add_metric([name], int(is_up))
            restarts.add_metric([name], count)
        yield up
        yield restarts
    if f.links:
        links = GaugeMetricFamily(
            "coresync_link_up",
            "1 while the link (mqtt, camera, modbus:<bus>) is up.",
            labels=["link"],
        )
        for name, is_up in f.links.items():
            links.add_metric([name], int(is_up))
        yield links
    if "mqtt" in f.links:
        yield GaugeMetricFamily(
            "coresync_mqtt_connected",
            "1 while connected to the MQTT broker.",
            value=int(f.links["mqtt"]),
        )
    if "camera" in f.links:
        yield GaugeMetricFamily(
            "coresync_camera_up",
            "1 while the door camera delivers frames.",
            value=int(f.links["camera"]),
        )
    if f.lag_s is not None and f.max_lag_s is not None:
        yield GaugeMetricFamily(
            "coresync_event_loop_lag_seconds", "How late the event loop woke last tick.", f.lag_s
        )
        yield GaugeMetricFamily(
            "coresync_event_loop_lag_max_seconds", "Largest event-loop lag seen.", f.max_lag_s
        )
