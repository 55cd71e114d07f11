"""Prometheus text metrics, written by hand (the format is simple and the
controller gains no dependency).

``/metrics`` answers loopback clients without a token (a local node exporter
or agent scrapes it); from the LAN it needs a staff token, because device
availability and command counts describe the building.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from ipaddress import ip_address
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from drivers.model import Availability
from edge.api.auth import require_staff
from edge.api.keys import CORE, DATA_DIR, METRICS, SETTINGS
from edge.api.metrics_process import process_lines
from edge.core import EdgeCore
from edge.door import registry
from edge.events import Event

log = logging.getLogger(__name__)

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _labels(**labels: str) -> str:
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in labels.items()
    )
    return "{" + inner + "}"


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self.latency_buckets: dict[str, list[int]] = {}
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.latency_count: dict[str, int] = defaultdict(int)
        self.command_results: dict[str, int] = defaultdict(int)
        self.ws_clients = 0
        self.door_decisions: dict[tuple[str, str], int] = defaultdict(int)
        self.command_buckets = [0] * len(BUCKETS)
        self.command_seconds_sum = 0.0
        self.command_count = 0
        self._untap: Callable[[], None] | None = None

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
            self.door_decisions[(str(data.get("decision")), str(data.get("method")))] += 1
        elif event.type == "command":
            self.command_result(str(data.get("result")))
        if event.type == "command" and isinstance(data.get("duration_ms"), int | float):
            seconds = float(data["duration_ms"]) / 1000.0
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self.command_buckets[i] += 1
            self.command_seconds_sum += seconds
            self.command_count += 1

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests[(method, route, str(status))] += 1
        # One increment per request (the first bucket it fits); render sums
        # them into Prometheus' cumulative buckets.  This runs on every request.
        buckets = self.latency_buckets.setdefault(route, [0] * len(BUCKETS))
        i = bisect.bisect_left(BUCKETS, seconds)
        if i < len(BUCKETS):
            buckets[i] += 1
        self.latency_sum[route] += seconds
        self.latency_count[route] += 1

    def command_result(self, result: str) -> None:
        self.command_results[result] += 1

    def render(
        self,
        core: EdgeCore,
        sync: dict[str, Any] | None = None,
        door: dict[str, Any] | None = None,
    ) -> str:
        """The exposition text; ``sync`` is ``sync_status`` and ``door`` is
        ``DoorService.status()``, each None when the site has none."""
        out = [
            "# HELP coresync_api_requests_total HTTP requests by method, route and status.",
            "# TYPE coresync_api_requests_total counter",
        ]
        for (method, route, status), n in sorted(self.requests.items()):
            labels = _labels(method=method, route=route, status=status)
            out.append(f"coresync_api_requests_total{labels} {n}")
        out += [
            "# HELP coresync_api_request_seconds HTTP request latency by route.",
            "# TYPE coresync_api_request_seconds histogram",
        ]
        for route, buckets in sorted(self.latency_buckets.items()):
            for bound, n in zip(BUCKETS, itertools.accumulate(buckets), strict=True):
                out.append(
                    f"coresync_api_request_seconds_bucket{_labels(route=route, le=str(bound))} {n}"
                )
            count = self.latency_count[route]
            out.append(
                f"coresync_api_request_seconds_bucket{_labels(route=route, le='+Inf')} {count}"
            )
            total = self.latency_sum[route]
            out.append(f"coresync_api_request_seconds_sum{_labels(route=route)} {total:.6f}")
            out.append(f"coresync_api_request_seconds_count{_labels(route=route)} {count}")
        out += [
            "# HELP coresync_api_websocket_clients Connected WebSocket clients.",
            "# TYPE coresync_api_websocket_clients gauge",
            f"coresync_api_websocket_clients {self.ws_clients}",
            "# HELP coresync_device_available 1 when the device is online, else 0.",
            "# TYPE coresync_device_available gauge",
        ]
        for room_id, device in sorted(core.all_devices(), key=lambda rd: rd[1].device_id):
            up = int(device.snapshot().availability is Availability.ONLINE)
            out.append(
                f"coresync_device_available{_labels(room=room_id, device=device.device_id)} {up}"
            )
        out += [
            "# HELP coresync_device_commands_total Device commands by result.",
            "# TYPE coresync_device_commands_total counter",
        ]
        for result, n in sorted(self.command_results.items()):
            out.append(f"coresync_device_commands_total{_labels(result=result)} {n}")
        out += [
            "# HELP coresync_device_command_seconds Device command duration, send to confirmed.",
            "# TYPE coresync_device_command_seconds histogram",
        ]
        for bound, n in zip(BUCKETS, self.command_buckets, strict=True):
            out.append(f"coresync_device_command_seconds_bucket{_labels(le=str(bound))} {n}")
        out += [
            f"coresync_device_command_seconds_bucket{_labels(le='+Inf')} {self.command_count}",
            f"coresync_device_command_seconds_sum {self.command_seconds_sum:.6f}",
            f"coresync_device_command_seconds_count {self.command_count}",
            "# HELP coresync_door_decisions_total Door decisions by decision and method.",
            "# TYPE coresync_door_decisions_total counter",
        ]
        for (decision, method), n in sorted(self.door_decisions.items()):
            labels = _labels(decision=decision, method=method)
            out.append(f"coresync_door_decisions_total{labels} {n}")
        out += _door_lines(door) + _sync_lines(sync)
        return "\n".join(out) + "\n"


def _door_lines(door: dict[str, Any] | None) -> list[str]:
    if door is None:
        return []
    labels = _labels(door=str(door["door"]))
    up = int(door.get("vision") != "down")
    return [
        "# HELP coresync_vision_worker_up 0 while the door's face recognition is unavailable.",
        "# TYPE coresync_vision_worker_up gauge",
        f"coresync_vision_worker_up{labels} {up}",
        "# HELP coresync_vision_worker_restarts_total Restarts of the vision worker process.",
        "# TYPE coresync_vision_worker_restarts_total counter",
        f"coresync_vision_worker_restarts_total{labels} {int(door['worker_restarts'])}",
        "# HELP coresync_door_cooling_down 1 while face access pauses after failed attempts.",
        "# TYPE coresync_door_cooling_down gauge",
        f"coresync_door_cooling_down{labels} {int(bool(door.get('cooling_down')))}",
    ]


def _sync_lines(sync: dict[str, Any] | None) -> list[str]:
    if sync is None:
        return []
    out = [
        "# HELP coresync_sync_queue_depth Changes waiting to be pushed to the cloud.",
        "# TYPE coresync_sync_queue_depth gauge",
        f"coresync_sync_queue_depth {int(sync['queue_depth'])}",
        "# HELP coresync_sync_attention_open Sync items waiting for staff.",
        "# TYPE coresync_sync_attention_open gauge",
        f"coresync_sync_attention_open {int(sync.get('attention_open') or 0)}",
    ]
    last = sync.get("last_success")
    if last:  # never synced: no sample, rather than a made-up age
        age = time.time() - datetime.fromisoformat(str(last)).astimezone(UTC).timestamp()
        out += [
            "# HELP coresync_sync_last_success_age_seconds Seconds since the last full sync.",
            "# TYPE coresync_sync_last_success_age_seconds gauge",
            f"coresync_sync_last_success_age_seconds {max(0.0, age):.3f}",
        ]
    return out


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


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        resource = request.match_info.route.resource
        # The route template, not the raw path: room ids must not explode the label set.
        route = resource.canonical if resource is not None else "unmatched"
        metrics: Metrics = request.app[METRICS]
        metrics.observe(request.method, route, status, time.perf_counter() - started)


def _is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ip_address(remote).is_loopback
    except ValueError:
        return False


async def metrics_handler(request: web.Request) -> web.Response:
    if not (request.app[SETTINGS].metrics_public_on_loopback and _is_loopback(request.remote)):
        require_staff(request)
    metrics: Metrics = request.app[METRICS]
    core: EdgeCore = request.app[CORE]
    door = registry.door_for(core)
    text = metrics.render(
        core, await _sync_status(core), door.status() if door is not None else None
    )
    text += "\n".join(await process_lines(core, request.app[DATA_DIR])) + "\n"
    return web.Response(
        text=text,
        content_type="text/plain",
        headers={"X-Prometheus-Format": "0.0.4"},
    )
