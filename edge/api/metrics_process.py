"""The daemon's own figures for ``/metrics``: supervised components, links to
the outside (MQTT, camera, Modbus buses), the data dir's free space, the
event loop's lag, events the bus dropped, and the process's memory and CPU.

Each is read where it lives at scrape time (a gauge of the supervisor, a
counter of the bus), never counted from the lossy event bus.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from pathlib import Path
from typing import Any

from edge.core import EdgeCore
from edge.health import disk_free
from edge.supervisor import Supervisor, supervisor_for

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return "{" + inner + "}"


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        # ru_maxrss is the peak, in KiB on Linux: better than nothing.
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _read_host(data_dir: Path) -> dict[str, Any]:
    """The figures that need a system call that may touch disk (run on a thread)."""
    try:
        free: int | None = disk_free(data_dir)
    except OSError:
        free = None
    return {"disk_free": free, "rss": _resident_bytes()}


def _gauge(name: str, help_text: str, kind: str = "gauge") -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


async def process_lines(core: EdgeCore, data_dir: Path) -> list[str]:
    host = await asyncio.to_thread(_read_host, data_dir)
    sup = supervisor_for(core)
    out = _gauge(
        "coresync_event_bus_dropped_total",
        "Events the bus dropped for slow subscribers.",
        "counter",
    )
    out.append(f"coresync_event_bus_dropped_total {core.events.dropped}")
    out += _gauge("coresync_process_resident_memory_bytes", "Resident memory of the daemon.")
    out.append(f"coresync_process_resident_memory_bytes {host['rss']}")
    out += _gauge("coresync_process_cpu_seconds_total", "CPU time used by the daemon.", "counter")
    out.append(f"coresync_process_cpu_seconds_total {time.process_time():.3f}")
    if host["disk_free"] is not None:
        out += _gauge("coresync_disk_free_bytes", "Free bytes on the data dir's filesystem.")
        out.append(f"coresync_disk_free_bytes {host['disk_free']}")
    if sup is not None:
        out += _supervisor_lines(sup)
    return out


def _supervisor_lines(sup: Supervisor) -> list[str]:
    out = _gauge("coresync_component_up", "1 while the supervised component runs, else 0.")
    for name, c in sup.components.items():
        out.append(f"coresync_component_up{_labels(component=name)} {int(c.up)}")
    out += _gauge(
        "coresync_component_restarts_total", "Restarts of the component after a crash.", "counter"
    )
    for name, c in sup.components.items():
        out.append(f"coresync_component_restarts_total{_labels(component=name)} {c.restarts}")
    links = {name: probe() for name, probe in sup.links.items()}
    out += _gauge("coresync_link_up", "1 while the link (mqtt, camera, modbus:<bus>) is up.")
    for name, up in links.items():
        out.append(f"coresync_link_up{_labels(link=name)} {int(up)}")
    if "mqtt" in links:
        out += _gauge("coresync_mqtt_connected", "1 while connected to the MQTT broker.")
        out.append(f"coresync_mqtt_connected {int(links['mqtt'])}")
    if "camera" in links:
        out += _gauge("coresync_camera_up", "1 while the door camera delivers frames.")
        out.append(f"coresync_camera_up {int(links['camera'])}")
    if sup.monitor is not None:
        out += _gauge("coresync_event_loop_lag_seconds", "How late the event loop woke last tick.")
        out.append(f"coresync_event_loop_lag_seconds {sup.monitor.lag_s:.6f}")
        out += _gauge("coresync_event_loop_lag_max_seconds", "Largest event-loop lag seen.")
        out.append(f"coresync_event_loop_lag_max_seconds {sup.monitor.max_lag_s:.6f}")
    return out
